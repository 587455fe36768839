package npm

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"byzantium/modules/entry"
)

// Limits bound what one package tarball may unpack to. A registry is
// someone else's server, and the lock pins bytes, not their sense.
type Limits struct {
	Bytes int64 // sum of the sizes of its entries; default MaxPackageBytes
	Files int   // entries; default MaxPackageFiles
}

const (
	// MaxPackageBytes: the largest real packages unpack to a few hundred
	// megabytes.
	MaxPackageBytes = 1 << 30
	// MaxPackageFiles: the largest real packages hold tens of thousands.
	MaxPackageFiles = 200_000
	maxName         = 255 // bytes in one path component, as squashfs and Linux allow
	maxPath         = 4095
)

func (l Limits) orDefault() Limits {
	if l.Bytes <= 0 {
		l.Bytes = MaxPackageBytes
	}
	if l.Files <= 0 {
		l.Files = MaxPackageFiles
	}
	return l
}

// tarFile is a regular file of a package tarball as npm extracts it.
type tarFile struct {
	rel   string // under the package's folder: top folder stripped, .gitignore renamed
	n     int    // its place among the files kept: a later one at the same rel replaces it
	mode  int64  // from the tarball
	size  int64
	mtime time.Time
}

// tarWalker reads a package tarball (gzip or plain tar) the way npm's
// pacote extracts it, handing out the regular files it keeps:
//   - the first path component (the top folder, usually package/, but
//     any name) is stripped, and entries left with no path are skipped;
//   - only files are kept: directories are implied, and symlinks,
//     hardlinks, devices and fifos are dropped, as npm drops them;
//   - a .gitignore becomes .npmignore unless one was seen already;
//   - an entry whose path is absolute or climbs with .. is refused with
//     ErrUnsafe (npm skips it with a warning; here it fails the build,
//     since no honest package has one), and so are names too long for the
//     file system and tarballs past the limits.
type tarWalker struct {
	tr        *tar.Reader
	zr        *gzip.Reader
	id        string
	lim       Limits
	total     int64
	files     int
	kept      int
	sawIgnore map[string]bool
}

func newTarWalker(r io.Reader, id string, lim Limits) (*tarWalker, error) {
	w := &tarWalker{id: id, lim: lim.orDefault(), sawIgnore: map[string]bool{}}
	br := bufio.NewReaderSize(r, 64<<10)
	var in io.Reader = br
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: broken tarball: %v", id, err)
		}
		w.zr, in = zr, zr
	}
	w.tr = tar.NewReader(in)
	return w, nil
}

// Next returns the next file kept, or io.EOF after the last.
func (w *tarWalker) Next() (*tarFile, error) {
	for {
		th, err := w.tr.Next()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("%s: broken tarball: %v", w.id, err)
		}
		w.files++
		if w.files > w.lim.Files {
			return nil, fmt.Errorf("%s: %w: more than %d entries", w.id, ErrUnsafe, w.lim.Files)
		}
		if th.Size < 0 || th.Size > w.lim.Bytes-w.total {
			return nil, fmt.Errorf("%s: %w: %s: unpacks to more than %d MiB", w.id, ErrUnsafe, th.Name, w.lim.Bytes>>20)
		}
		w.total += th.Size
		if err := checkTarPath(th.Name); err != nil {
			return nil, fmt.Errorf("%s: %w: %v", w.id, ErrUnsafe, err)
		}
		switch th.Typeflag {
		case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse: // archive/tar reads '\x00' as TypeReg
		default:
			continue
		}
		_, rest, ok := strings.Cut(th.Name, "/")
		if !ok {
			continue
		}
		rel := entry.Clean(rest)
		if rel == "." {
			continue
		}
		switch path.Base(rel) {
		case ".npmignore":
			w.sawIgnore[rel] = true
		case ".gitignore":
			ni := strings.TrimSuffix(rel, ".gitignore") + ".npmignore"
			if w.sawIgnore[ni] {
				continue
			}
			rel = ni
		}
		w.kept++
		return &tarFile{rel: rel, n: w.kept, mode: th.Mode, size: th.Size, mtime: th.ModTime}, nil
	}
}

// Read reads the body of the current file.
func (w *tarWalker) Read(p []byte) (int, error) {
	n, err := w.tr.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: broken tarball: %w", w.id, err)
	}
	return n, err
}

// Close releases the decompressor.
func (w *tarWalker) Close() error {
	if w.zr != nil {
		return w.zr.Close()
	}
	return nil
}

// walkTarball calls fn for every file a tarWalker keeps.
func walkTarball(r io.Reader, id string, lim Limits, fn func(f *tarFile, body io.Reader) error) error {
	w, err := newTarWalker(r, id, lim)
	if err != nil {
		return err
	}
	defer w.Close()
	for {
		f, err := w.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(f, w); err != nil {
			return err
		}
	}
}

// checkTarPath refuses a path that is absolute, climbs out with .., or
// is longer than Linux and squashfs allow.
func checkTarPath(name string) error {
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("%q: an absolute path", name)
	}
	if len(name) > maxPath {
		return fmt.Errorf("%.40q…: a path of %d bytes", name, len(name))
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return fmt.Errorf("%q: climbs out of the package with a .. component", name)
		}
		if len(c) > maxName {
			return fmt.Errorf("%.40q…: a name of %d bytes", c, len(c))
		}
		if strings.IndexByte(c, 0) >= 0 {
			return fmt.Errorf("%q: a NUL byte in a name", name)
		}
	}
	return nil
}

// fileMode is the mode npm gives an extracted file: at least rw-rw-rw-
// less a 022 umask, owner read-write, execute bits kept; setuid, setgid
// and sticky dropped (npm's extractor keeps whatever the kernel lets
// through; a module owned by root must not).
func fileMode(tarMode int64) uint32 {
	return uint32((tarMode|0o666|0o600)&^0o022) & 0o777
}

// crlfShebang returns the offset of the \r that ends a "#!" first line
// within the first 2 KiB, which npm's bin linking removes, or -1.
func crlfShebang(head []byte) int64 {
	if len(head) > 2048 {
		head = head[:2048]
	}
	if !bytes.HasPrefix(head, []byte("#!")) {
		return -1
	}
	i := bytes.IndexByte(head, '\n')
	if i < 4 || head[i-1] != '\r' {
		return -1
	}
	return int64(i - 1)
}

// nodeKind says what a .node file is built for, from its header and, for
// ELF, whether it links musl's libc. ok is true for linux-x64 glibc.
func nodeKind(body io.Reader, size int64) (desc string, ok bool, err error) {
	var hdr [64]byte
	n, err := io.ReadFull(body, hdr[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", false, err
	}
	h := hdr[:n]
	switch {
	case bytes.HasPrefix(h, []byte("\x7fELF")) && len(h) >= 20:
		class, machine := h[4], binary.LittleEndian.Uint16(h[18:])
		if h[5] == 2 { // big-endian
			machine = binary.BigEndian.Uint16(h[18:])
		}
		arch := map[uint16]string{3: "x86", 40: "arm", 62: "x86-64", 183: "aarch64", 243: "riscv",
			8: "mips", 21: "ppc64", 22: "s390x"}[machine]
		if arch == "" {
			arch = fmt.Sprintf("machine %d", machine)
		}
		if class != 2 || machine != 62 || h[5] != 1 {
			return "ELF " + arch, false, nil
		}
		musl, err := contains(io.LimitReader(body, size-int64(n)), []byte("libc.musl-"))
		if err != nil {
			return "", false, err
		}
		if musl {
			return "ELF x86-64 musl", false, nil
		}
		return "ELF x86-64 glibc", true, nil
	case bytes.HasPrefix(h, []byte{0xcf, 0xfa, 0xed, 0xfe}), bytes.HasPrefix(h, []byte{0xca, 0xfe, 0xba, 0xbe}),
		bytes.HasPrefix(h, []byte{0xfe, 0xed, 0xfa, 0xcf}):
		return "Mach-O (macOS)", false, nil
	case bytes.HasPrefix(h, []byte("MZ")):
		return "PE (Windows)", false, nil
	}
	return "not a shared object", false, nil
}

// contains reports whether r holds pat, reading it in chunks.
func contains(r io.Reader, pat []byte) (bool, error) {
	buf := make([]byte, 64<<10)
	keep := 0
	for {
		n, err := r.Read(buf[keep:])
		if bytes.Contains(buf[:keep+n], pat) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		// Keep the last len(pat)-1 bytes: a match may straddle chunks.
		end := keep + n
		keep = min(len(pat)-1, end)
		copy(buf, buf[end-keep:end])
	}
}

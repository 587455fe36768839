package modules

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/modules/manifest"
	"byzantium/modules/squashfs"
)

// Module is an opened module file.
type Module struct {
	Path string
	size int64
	c    io.Closer
	*squashfs.Reader
}

// Open opens a module file for reading.
func Open(path string) (*Module, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return newModule(f, fi.Size(), path)
}

// OpenFS opens the module name in fsys, a media tree read from a folder or
// a disk image; path names it in messages. The file fsys returns must be an
// io.ReaderAt, as os.DirFS's and the FAT reader's are.
func OpenFS(fsys fs.FS, name, path string) (*Module, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("%s: this file system cannot read at offsets (no io.ReaderAt)", path)
	}
	return newModule(struct {
		io.ReaderAt
		io.Closer
	}{ra, f}, fi.Size(), path)
}

func newModule(f interface {
	io.ReaderAt
	io.Closer
}, size int64, path string) (*Module, error) {
	r, err := squashfs.NewReader(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Module{Path: path, size: size, c: f, Reader: r}, nil
}

// Close closes the module file.
func (m *Module) Close() error { return m.c.Close() }

// Size is the size of the module file in bytes.
func (m *Module) Size() int64 { return m.size }

// Manifests returns the manifests the module carries (normally one), sorted
// by name. It reads only metadata, never file data other than the
// manifests themselves.
func (m *Module) Manifests() ([]*manifest.Manifest, error) {
	h, err := m.Stat(manifest.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	if !h.IsDir() {
		return nil, fmt.Errorf("%s: /%s is not a directory", m.Path, manifest.Dir)
	}
	var out []*manifest.Manifest
	names, err := m.ReadDirNames(manifest.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	for _, n := range names {
		if !strings.HasSuffix(n, ".json") {
			continue
		}
		b, err := m.ReadFile(manifest.Dir + "/" + n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Path, err)
		}
		mf, err := manifest.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("%s: /%s/%s: %w", m.Path, manifest.Dir, n, err)
		}
		out = append(out, mf)
	}
	return out, nil
}

// Info is what `byz module info` shows.
type Info struct {
	File              string               `json:"file"`
	Size              int64                `json:"size"`
	Compressor        string               `json:"compressor"`
	CompressorOptions map[string]int       `json:"compressor_options,omitempty"`
	BlockSize         uint32               `json:"block_size"`
	Inodes            uint32               `json:"inodes"`
	Fragments         uint32               `json:"fragments"`
	IDs               uint16               `json:"ids"`
	Created           time.Time            `json:"created"`
	Flags             []string             `json:"flags"`
	Manifest          *manifest.Manifest   `json:"manifest,omitempty"`
	Others            []*manifest.Manifest `json:"other_manifests,omitempty"`
}

var flagNames = []struct {
	bit  uint16
	name string
}{
	{squashfs.FlagUncompressedInodes, "uncompressed-inodes"},
	{squashfs.FlagUncompressedData, "uncompressed-data"},
	{squashfs.FlagUncompressedFragments, "uncompressed-fragments"},
	{squashfs.FlagNoFragments, "no-fragments"},
	{squashfs.FlagAlwaysFragments, "always-fragments"},
	{squashfs.FlagDuplicates, "duplicates"},
	{squashfs.FlagExportable, "exportable"},
	{squashfs.FlagUncompressedXattrs, "uncompressed-xattrs"},
	{squashfs.FlagNoXattrs, "no-xattrs"},
	{squashfs.FlagCompressorOptions, "compressor-options"},
	{squashfs.FlagUncompressedIDs, "uncompressed-ids"},
}

// Inspect reads a module's superblock and manifest.
func Inspect(path string) (*Info, error) {
	m, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	sb := m.Superblock()
	info := &Info{
		File: path, Size: m.Size(), Compressor: sb.Compressor.String(), BlockSize: sb.BlockSize,
		Inodes: sb.InodeCount, Fragments: sb.FragmentCount, IDs: sb.IDCount,
		Created: time.Unix(int64(sb.ModTime), 0).UTC(), Flags: []string{},
	}
	for _, f := range flagNames {
		if sb.Flags&f.bit != 0 {
			info.Flags = append(info.Flags, f.name)
		}
	}
	if info.CompressorOptions, err = m.CompressorOptions(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ms, err := m.Manifests()
	if err != nil {
		return nil, err
	}
	// The module's own manifest is the one named after the file; a module
	// merged from other modules carries theirs too.
	want := NameFromFile(path)
	for _, mf := range ms {
		if info.Manifest == nil && (mf.Name == want || len(ms) == 1) {
			info.Manifest = mf
		} else {
			info.Others = append(info.Others, mf)
		}
	}
	if info.Manifest == nil && len(info.Others) > 0 {
		info.Manifest, info.Others = info.Others[0], info.Others[1:]
	}
	return info, nil
}

// WriteText prints info for people.
func (info *Info) WriteText(w io.Writer) error {
	p := func(k, f string, a ...any) { fmt.Fprintf(w, "%-12s "+f+"\n", append([]any{k + ":"}, a...)...) }
	p("file", "%s (%d bytes)", info.File, info.Size)
	if mf := info.Manifest; mf != nil {
		p("name", "%s", mf.Name)
		p("version", "%s", orNone(mf.Version))
		p("depends", "%s", orNone(strings.Join(mf.Depends, ", ")))
		p("provides", "%s", orNone(strings.Join(mf.Provides, ", ")))
		for _, s := range mf.Services {
			p("service", "%s: %s", s.Name, strings.Join(s.Command, " "))
		}
		for _, s := range mf.Sources {
			p("source", "%s %s sha256:%s", s.Kind, s.Ref, s.SHA256)
		}
	} else {
		p("manifest", "none (not built by byz)")
	}
	for _, o := range info.Others {
		p("includes", "%s %s", o.Name, o.Version)
	}
	opts := make([]string, 0, len(info.CompressorOptions))
	for k, v := range info.CompressorOptions {
		opts = append(opts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(opts)
	comp := info.Compressor
	if len(opts) > 0 {
		comp += " (" + strings.Join(opts, ", ") + ")"
	}
	p("compressor", "%s", comp)
	p("block size", "%d", info.BlockSize)
	p("inodes", "%d", info.Inodes)
	p("fragments", "%d", info.Fragments)
	p("ids", "%d", info.IDs)
	p("created", "%s", info.Created.Format(time.RFC3339))
	p("flags", "%s", orNone(strings.Join(info.Flags, " ")))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// List writes one line per entry of the module, in the manner of
// `unsquashfs -lls`: mode, uid/gid, size (or major,minor), time, path.
func List(w io.Writer, path string) error {
	m, err := Open(path)
	if err != nil {
		return err
	}
	defer m.Close()
	r := m.Entries()
	sizes := map[string]int64{} // regular file sizes, for hardlinks
	for {
		h, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		mode, size := h.ModeString(), fmt.Sprintf("%d", h.Size)
		name := "/" + h.Path
		if h.Path == "." {
			name = "/"
		}
		switch h.Type {
		case entry.TypeRegular:
			sizes[h.Path] = h.Size
		case entry.TypeHardlink:
			size = fmt.Sprintf("%d", sizes[h.Linkname])
			name += " link to /" + h.Linkname
		case entry.TypeSymlink:
			size = fmt.Sprintf("%d", len(h.Linkname))
			name += " -> " + h.Linkname
		case entry.TypeCharDev, entry.TypeBlockDev:
			size = fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor)
		}
		if _, err := fmt.Fprintf(w, "%s %d/%d %12s %s %s\n", mode, h.UID, h.GID, size,
			h.ModTime.UTC().Format("2006-01-02 15:04"), name); err != nil {
			return err
		}
	}
}

// Extract writes a module's files into dir, which must be empty or absent
// unless overwrite is set.
func Extract(path, dir string, overwrite bool) error {
	m, err := Open(path)
	if err != nil {
		return err
	}
	defer m.Close()
	opts := hostfs.ExtractOptions{Overwrite: overwrite, NoChown: os.Geteuid() != 0}
	if err := hostfs.Extract(m.Entries(), dir, opts); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

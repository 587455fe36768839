// Package deb reads Debian binary packages (deb(5)) as entry streams: the ar
// archive is read front to back from any io.Reader, the control file is
// parsed on the way, and the data tarball becomes the stream. Nothing is
// staged on disk. Several packages make one module by entry.Concat.
package deb

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"byzantium/modules/entry"
	"byzantium/modules/tarball"
)

// Errors callers branch on; each is wrapped with the package's name.
var (
	// ErrNotDeb reports input that is not a well-formed .deb: no ar magic,
	// a bad member header, a wrong debian-binary, missing members or a
	// control file ParseControl rejects.
	ErrNotDeb = errors.New("deb: not a Debian binary package")
	// ErrCompression reports a control or data member compressed in a way
	// tarball cannot read (data.tar.lzma, or an unknown suffix).
	ErrCompression = errors.New("deb: unsupported member compression")
)

// Package is an open .deb: its parsed control file, and an entry stream of
// its data.tar.
type Package struct {
	Control *Control
	// Compression is the data member's compression, from its name.
	Compression tarball.Compression
	data        *tarball.Reader
}

// compressions maps member name suffixes to compressions. lzma is absent:
// dpkg still reads it, but tarball does not.
var compressions = map[string]tarball.Compression{
	"": tarball.None, ".gz": tarball.Gzip, ".xz": tarball.XZ, ".zst": tarball.Zstd, ".bz2": tarball.Bzip2,
}

// Open reads r up to the start of the data member and returns the package,
// ready to stream the data. name labels errors (the .deb's file name). The
// caller must read the stream from r only through the Package, and Close it.
func Open(r io.Reader, name string) (*Package, error) {
	p, err := open(r, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

func open(r io.Reader, name string) (*Package, error) {
	ar, err := newArReader(r)
	if err != nil {
		return nil, err
	}
	member, _, err := ar.next()
	if err != nil || member != "debian-binary" {
		return nil, fmt.Errorf("%w: first member is %q (%v), want debian-binary", ErrNotDeb, member, err)
	}
	version, err := io.ReadAll(io.LimitReader(ar.body, 64))
	if err != nil {
		return nil, fmt.Errorf("debian-binary: %w", err)
	}
	if v := strings.TrimSpace(string(version)); !strings.HasPrefix(v, "2.") {
		return nil, fmt.Errorf("%w: format version %q, want 2.x", ErrNotDeb, v)
	}
	member, err = nextMember(ar, "control.tar")
	if err != nil {
		return nil, err
	}
	control, err := readControl(ar.body, name+"("+member+")")
	if err != nil {
		return nil, err
	}
	member, err = nextMember(ar, "data.tar")
	if err != nil {
		return nil, err
	}
	data, err := tarball.NewReader(ar.body, name+"("+member+")")
	if err != nil {
		return nil, err
	}
	return &Package{Control: control, Compression: compressions[strings.TrimPrefix(member, "data.tar")], data: data}, nil
}

// nextMember moves to the next member, which must be base plus a known
// compression suffix. Members named "_…" are skipped: deb(5) reserves them
// for local additions such as signatures.
func nextMember(ar *arReader, base string) (string, error) {
	for {
		member, _, err := ar.next()
		if err == io.EOF {
			return "", fmt.Errorf("%w: no %s member", ErrNotDeb, base)
		}
		if err != nil {
			return "", fmt.Errorf("%w: reading the member after %s: %v", ErrNotDeb, base, err)
		}
		if strings.HasPrefix(member, "_") {
			continue
		}
		suffix, ok := strings.CutPrefix(member, base)
		if !ok {
			return "", fmt.Errorf("%w: member %q where %s was expected", ErrNotDeb, member, base)
		}
		if _, known := compressions[suffix]; !known {
			return "", fmt.Errorf("%w: %s", ErrCompression, member)
		}
		return member, nil
	}
}

// readControl finds ./control in the control tarball and parses it; the
// maintainer scripts and md5sums beside it are not needed.
func readControl(r io.Reader, label string) (*Control, error) {
	tr, err := tarball.NewReader(r, label)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: %s has no control file", ErrNotDeb, label)
		}
		if err != nil {
			return nil, err
		}
		if h.Path == "control" && h.Type == entry.TypeRegular {
			c, err := ParseControl(io.LimitReader(tr, 1<<20))
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrNotDeb, label, err)
			}
			return c, nil
		}
	}
}

// Next returns the next entry of data.tar.
func (p *Package) Next() (*entry.Header, error) { return p.data.Next() }

// Read reads the body of the current entry.
func (p *Package) Read(b []byte) (int, error) { return p.data.Read(b) }

// Close releases the decompressor. It does not close the underlying reader.
func (p *Package) Close() error { return p.data.Close() }

package modules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"time"

	"byzantium/modules/deb"
	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/modules/npm"
	"byzantium/modules/oci"
	"byzantium/modules/squashfs"
	"byzantium/modules/tarball"
)

// Kind is the kind of a source.
type Kind string

const (
	KindDir    Kind = "dir"
	KindTar    Kind = "tar"
	KindDeb    Kind = "deb"
	KindOCI    Kind = "oci"
	KindModule Kind = "module"
	KindNPM    Kind = "npm"
)

// ErrSource reports a source reference that names nothing usable.
var ErrSource = errors.New("bad source")

// Source is a parsed source reference.
type Source struct {
	Ref  string // as the user wrote it
	Kind Kind
}

var tarSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tzst", ".tar.xz", ".txz", ".tar.bz2", ".tbz2"}
var moduleSuffixes = []string{".xzm", ".sqfs", ".squashfs"}

// ParseSource decides what a reference names and checks that it exists, so
// that every source is known good before any output is created.
//
//	DIR                       a directory
//	FILE.tar[.gz|.zst|.xz|.bz2], FILE.txz   a tarball (Slackware packages too)
//	FILE.deb                  a Debian package
//	FILE.xzm, FILE.sqfs       an existing module
//	oci:PATH[:tag]            an OCI image layout
//	docker-archive:FILE[:tag] a docker save tarball
//	npm:DIR, npm:LOCKFILE     an npm application: node_modules from its package lock
//	anything else with a / or : in it: a registry reference
func ParseSource(ref string) (Source, error) {
	if ref == "" {
		return Source{}, fmt.Errorf("%w: empty source", ErrSource)
	}
	if strings.HasPrefix(ref, "oci:") || strings.HasPrefix(ref, "docker-archive:") {
		return Source{Ref: ref, Kind: KindOCI}, nil
	}
	if p, ok := strings.CutPrefix(ref, "npm:"); ok {
		if _, err := npm.FindLock(p); err != nil {
			return Source{}, fmt.Errorf("%w: %s: %v", ErrSource, ref, err)
		}
		return Source{Ref: ref, Kind: KindNPM}, nil
	}
	fi, err := os.Stat(ref)
	if err == nil {
		if fi.IsDir() {
			return Source{Ref: ref, Kind: KindDir}, nil
		}
		lower := strings.ToLower(ref)
		for _, s := range tarSuffixes {
			if strings.HasSuffix(lower, s) {
				return Source{Ref: ref, Kind: KindTar}, nil
			}
		}
		if strings.HasSuffix(lower, ".deb") {
			return Source{Ref: ref, Kind: KindDeb}, nil
		}
		for _, s := range moduleSuffixes {
			if strings.HasSuffix(lower, s) {
				return Source{Ref: ref, Kind: KindModule}, nil
			}
		}
		return Source{}, fmt.Errorf("%w: %s: unknown kind of file; name a directory, a .tar[.gz|.zst|.xz], .txz, .deb or .xzm, or use oci:PATH or docker-archive:FILE", ErrSource, ref)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Source{}, fmt.Errorf("%w: %s: %v", ErrSource, ref, err)
	}
	// Not a local path: a registry reference looks like host/repo[:tag] or
	// repo:tag. A bare word is far more likely a mistyped path.
	if strings.ContainsAny(ref, "/:") && !strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, ".") {
		return Source{Ref: ref, Kind: KindOCI}, nil
	}
	return Source{}, fmt.Errorf("%w: %s: no such file or directory", ErrSource, ref)
}

// stream is an opened source: its entries, how to release it, and its
// digest once the entries have been read to the end.
type stream struct {
	entry.Reader
	src     Source
	closers []func() error
	digest  func() string
	control *deb.Control // for .deb: default name and version
}

func (s *stream) Close() error {
	var first error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	s.closers = nil
	return first
}

// hashingFile opens a file whose bytes will all be read through the
// returned reader, hashing them on the way: the digest of a tarball or a
// package costs no second pass.
func hashingFile(path string) (io.Reader, hash.Hash, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	h := sha256.New()
	return io.TeeReader(f, h), h, f, nil
}

func hexSum(h hash.Hash) func() string {
	return func() string { return hex.EncodeToString(h.Sum(nil)) }
}

// open opens one source as a single entry stream (an OCI image is
// flattened; Create handles --per-layer itself). With epoch set, entries
// newer than it are clamped before they are hashed, so a directory's
// digest covers its entries as they go into the module. An npm source
// reads its tarballs from npmCache.
func open(src Source, epoch *time.Time, exclude []string, npmCache npm.Cache) (*stream, error) {
	s := &stream{src: src}
	switch src.Kind {
	case KindDir:
		r, err := hostfs.NewReader(src.Ref)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, r.Close)
		var in entry.Reader = r
		if epoch != nil {
			in = entry.ClampModTime(r, *epoch)
		}
		if exclude != nil {
			in = entry.Exclude(in, exclude)
		}
		h := sha256.New()
		s.Reader, s.digest = entry.Hash(in, h), hexSum(h)
	case KindTar:
		in, h, f, err := hashingFile(src.Ref)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, f.Close)
		tr, err := tarball.NewReader(in, src.Ref)
		if err != nil {
			f.Close()
			return nil, err
		}
		s.closers = append(s.closers, tr.Close)
		s.Reader, s.digest = &drain{Reader: tr, in: in}, hexSum(h)
	case KindDeb:
		in, h, f, err := hashingFile(src.Ref)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, f.Close)
		p, err := deb.Open(in, src.Ref)
		if err != nil {
			f.Close()
			return nil, err
		}
		s.closers = append(s.closers, p.Close)
		s.control = p.Control
		s.Reader, s.digest = &drain{Reader: p, in: in}, hexSum(h)
	case KindModule:
		f, err := os.Open(src.Ref)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, f.Close)
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		sr, err := squashfs.NewReader(f, fi.Size())
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", src.Ref, err)
		}
		// A module has no stream of its own bytes to tee, so its digest is
		// taken in a separate pass over the file when asked for.
		s.Reader = sr.Entries()
		s.digest = func() string {
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
				return ""
			}
			return hex.EncodeToString(h.Sum(nil))
		}
	case KindOCI:
		img, err := oci.Open(src.Ref)
		if err != nil {
			return nil, err
		}
		// The config digest (the image ID) names the image's content and,
		// unlike the manifest digest, costs nothing for docker-save archives.
		d, err := img.ConfigDigest()
		if err != nil {
			return nil, err
		}
		r, err := img.Flatten()
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, r.Close)
		s.Reader, s.digest = r, func() string { return strings.TrimPrefix(d, "sha256:") }
	case KindNPM:
		app, err := npm.LoadApp(strings.TrimPrefix(src.Ref, "npm:"))
		if err != nil {
			return nil, err
		}
		var opts npm.Options
		if epoch != nil {
			opts.ModTime = *epoch
		}
		r, err := npm.Open(app, npmCache, opts)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, r.Close)
		s.Reader, s.digest = r, app.Digest
	default:
		return nil, fmt.Errorf("%w: %s: kind %q", ErrSource, src.Ref, src.Kind)
	}
	if exclude != nil && src.Kind != KindDir {
		s.Reader = entry.Exclude(s.Reader, exclude)
	}
	return s, nil
}

// drain reads what is left of the underlying file once the entries end,
// so that the digest covers every byte (tar's zero blocks, trailing ar
// members).
type drain struct {
	entry.Reader
	in io.Reader
}

func (d *drain) Next() (*entry.Header, error) {
	h, err := d.Reader.Next()
	if err == io.EOF {
		if _, cerr := io.Copy(io.Discard, d.in); cerr != nil {
			return nil, cerr
		}
	}
	return h, err
}

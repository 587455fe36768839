// Package modules builds Byzantium modules: it opens sources (directories,
// tarballs, Debian packages, OCI images, npm applications, other modules), merges their entry
// streams in order, adds the module's manifest and writes a SquashFS image.
package modules

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"byzantium/modules/entry"
	"byzantium/modules/manifest"
	"byzantium/modules/npm"
	"byzantium/modules/oci"
	"byzantium/modules/squashfs"
)

// Layout says how an OCI image becomes modules.
type Layout int

const (
	// Flatten merges all layers into one module (the default).
	Flatten Layout = iota
	// PerLayer writes one module per layer, whiteouts kept as overlayfs
	// whiteouts, each depending on the one below.
	PerLayer
)

// CreateOptions configures Create. The zero value builds a zstd module named
// after the output file, with no clamping of times.
type CreateOptions struct {
	Name    string // default: the package name of a lone .deb, else from the output file name
	Version string // default: the version of a lone .deb
	Depends []string
	// Services go into the manifest as given (with PerLayer, into the top
	// layer's, which stacks on all the others).
	Services []manifest.Service
	Layout   Layout
	// Epoch, when set, is SOURCE_DATE_EPOCH: the filesystem's time, the
	// time of entries the build makes, and the clamp for later mtimes.
	Epoch    *time.Time
	Squashfs squashfs.Options
	// Counter, when set, counts the entries and bytes read from the
	// sources, for a progress display.
	Counter *entry.Counter
	// SourceNames, when set, are what the manifest records for the sources
	// (one per source, in order) instead of the references as given: a
	// builder passes names that do not depend on the machine or on
	// temporary folders, so the module is the same wherever it is built.
	SourceNames []string
	// Exclude leaves out of every source the entries whose path matches
	// one of these patterns (entry.Exclude), before a folder source is
	// hashed for the manifest: what is left out leaves no trace there.
	Exclude []string
	// NPMCache is where npm: sources find their tarballs (byz module
	// fetch puts them there); the zero value is npm.DefaultCache().
	NPMCache npm.Cache
}

// Create builds a module at out from the sources, merged in order (a later
// source's entry replaces an earlier one at the same path). It returns the
// paths written: one, or one per layer with PerLayer. Every source is
// checked before anything is written, the module is written to a temporary
// file beside out and renamed into place only when complete, so a failure
// leaves no partial output.
func Create(refs []string, out string, opts CreateOptions) ([]string, error) {
	if len(refs) == 0 {
		return nil, fmt.Errorf("%w: no sources given", ErrSource)
	}
	srcs := make([]Source, len(refs))
	for i, ref := range refs {
		s, err := ParseSource(ref)
		if err != nil {
			return nil, err
		}
		srcs[i] = s
	}
	if opts.SourceNames != nil && len(opts.SourceNames) != len(refs) {
		return nil, fmt.Errorf("%w: %d source names for %d sources", ErrSource, len(opts.SourceNames), len(refs))
	}
	if opts.Layout == PerLayer {
		if len(srcs) != 1 || srcs[0].Kind != KindOCI {
			return nil, fmt.Errorf("%w: --per-layer takes exactly one OCI image source", ErrSource)
		}
		return createPerLayer(srcs[0], out, opts)
	}
	if opts.Epoch != nil {
		opts.Squashfs.ModTime = *opts.Epoch
	}
	if err := checkSquashfs(opts.Squashfs); err != nil {
		return nil, err
	}

	var streams []*stream
	defer func() {
		for _, s := range streams {
			s.Close()
		}
	}()
	var readers []entry.Reader
	for _, src := range srcs {
		if opts.NPMCache.Dir == "" {
			opts.NPMCache = npm.DefaultCache()
		}
		s, err := open(src, opts.Epoch, opts.Exclude, opts.NPMCache)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.Ref, err)
		}
		streams = append(streams, s)
		readers = append(readers, s.Reader)
	}
	m := &manifest.Manifest{Name: opts.Name, Version: opts.Version, Depends: opts.Depends, Services: opts.Services}
	if len(streams) == 1 && streams[0].control != nil {
		c := streams[0].control
		if m.Name == "" {
			m.Name = strings.ToLower(c.Package)
		}
		if m.Version == "" {
			m.Version = c.Version
		}
	}
	if m.Name == "" {
		m.Name = NameFromFile(out)
	}
	// Validate the manifest now, before any output exists.
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w (set it with --name)", err)
	}
	r := entry.Concat(readers...)
	err := writeAtomically(out, func(w io.WriteSeeker) error {
		return writeModule(w, r, m, opts, func() []manifest.Source {
			var ss []manifest.Source
			for i, s := range streams {
				ref := s.src.Ref
				if opts.SourceNames != nil {
					ref = opts.SourceNames[i]
				}
				ss = append(ss, manifest.Source{Ref: ref, Kind: string(s.src.Kind), SHA256: s.digest()})
			}
			return ss
		})
	})
	if err != nil {
		return nil, err
	}
	return []string{out}, nil
}

// writeModule streams r into a squashfs writer and appends the manifest,
// whose source digests are known only once every entry has been read.
func writeModule(w io.WriteSeeker, r entry.Reader, m *manifest.Manifest, opts CreateOptions, sources func() []manifest.Source) error {
	sw, err := squashfs.NewWriter(w, opts.Squashfs)
	if err != nil {
		return err
	}
	if opts.Epoch != nil {
		r = entry.ClampModTime(r, *opts.Epoch)
	}
	if opts.Counter != nil {
		r = entry.Count(r, opts.Counter)
	}
	if _, err := entry.Copy(sw, r); err != nil {
		return err
	}
	m.Sources = sources()
	body, err := m.Marshal()
	if err != nil {
		return err
	}
	h := &entry.Header{Path: manifest.Path(m.Name), Type: entry.TypeRegular, Mode: 0o644,
		ModTime: opts.Squashfs.ModTime, Size: int64(len(body))}
	if err := sw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := sw.Write(body); err != nil {
		return err
	}
	return sw.Close()
}

func createPerLayer(src Source, out string, opts CreateOptions) ([]string, error) {
	img, err := oci.Open(src.Ref)
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if opts.Epoch != nil {
		opts.Squashfs.ModTime = *opts.Epoch
	}
	base := opts.Name
	if base == "" {
		base = NameFromFile(out)
	}
	// The services go into the last layer: check them before the first
	// is written.
	if err := (&manifest.Manifest{Name: base, Services: opts.Services}).Validate(); err != nil {
		return nil, err
	}
	stem := strings.TrimSuffix(out, filepath.Ext(out))
	var outs []string
	prev := ""
	for i, l := range layers {
		path := fmt.Sprintf("%s-layer%02d.xzm", stem, i)
		m := &manifest.Manifest{Name: fmt.Sprintf("%s-layer%02d", base, i), Version: opts.Version}
		if prev != "" {
			m.Depends = []string{prev}
		} else {
			m.Depends = opts.Depends
		}
		if i == len(layers)-1 {
			m.Services = opts.Services
		}
		if err := m.Validate(); err != nil {
			return outs, err
		}
		// The diff ID is the digest of the layer's uncompressed tar, which
		// is what the module is made from.
		digest, err := l.DiffID()
		if err != nil {
			return outs, err
		}
		r, err := l.Open()
		if err != nil {
			return outs, err
		}
		err = writeAtomically(path, func(w io.WriteSeeker) error {
			return writeModule(w, r, m, opts, func() []manifest.Source {
				return []manifest.Source{{Ref: fmt.Sprintf("%s#layer%d", src.Ref, i), Kind: string(KindOCI),
					SHA256: strings.TrimPrefix(digest, "sha256:")}}
			})
		})
		r.Close()
		if err != nil {
			return outs, err
		}
		outs = append(outs, path)
		prev = m.Name
	}
	return outs, nil
}

// checkSquashfs rejects options the writer would refuse, before any source
// is opened or output created.
func checkSquashfs(o squashfs.Options) error {
	switch o.Compressor {
	case 0, squashfs.Zstd, squashfs.Gzip, squashfs.XZ:
	default:
		return fmt.Errorf("%w %s: choose zstd, gzip or xz", squashfs.ErrUnknownCompressor, o.Compressor)
	}
	if bs := o.BlockSize; bs != 0 && (bs < squashfs.MinBlockSize || bs > squashfs.MaxBlockSize || bs&(bs-1) != 0) {
		return fmt.Errorf("block size %d: use a power of two from 4K to 1M", bs)
	}
	return nil
}

// NameFromFile derives a module name from a module file name the Porteus
// way: "/x/050-ngircd.xzm" → "ngircd".
func NameFromFile(path string) string {
	base := filepath.Base(path)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	if i := strings.IndexByte(base, '-'); i > 0 && strings.Trim(base[:i], "0123456789") == "" {
		base = base[i+1:]
	}
	return strings.ToLower(base)
}

// writeAtomically runs write on a temporary file in out's directory and
// renames it to out only if write succeeds and the data reached the disk.
// On any failure the temporary file is removed and out is left as it was.
func writeAtomically(out string, write func(io.WriteSeeker) error) (err error) {
	dir := filepath.Dir(out)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("output %s: %s is not a directory", out, dir)
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return fmt.Errorf("output %s is a directory; give a file name such as %s", out, filepath.Join(out, "module.xzm"))
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	return nil
}

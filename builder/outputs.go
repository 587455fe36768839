package builder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"byzantium/builder/spec"
	"byzantium/image/media"
	"byzantium/overlays"
)

// checkOutputs checks, before anything is made, that every output can
// replace what is at its path: a file output never replaces a folder, and
// a dir output replaces only a media tree an earlier build wrote.
func (b *builder) checkOutputs() error {
	o := b.spec.Outputs
	type output struct {
		key, name string
		dir       bool
	}
	var outs []output
	if o.ISO != "" {
		outs = append(outs, output{"outputs.iso", o.ISO, false})
	}
	if o.USB != nil {
		outs = append(outs, output{"outputs.usb.file", o.USB.File, false})
	}
	if o.Dir != "" {
		outs = append(outs, output{"outputs.dir", o.Dir, true})
	}
	var errs []error
	fail := func(key string, err error) {
		errs = append(errs, &spec.Error{Pos: b.spec.Position(key), Path: key, Err: err})
	}
	if fi, err := os.Stat(b.opts.Out); err == nil && !fi.IsDir() {
		return fmt.Errorf("output folder %s is a file", b.opts.Out)
	}
	for _, out := range outs {
		final := filepath.Join(b.opts.Out, out.name)
		if fi, err := os.Stat(filepath.Dir(final)); err == nil && !fi.IsDir() {
			fail(out.key, fmt.Errorf("%s is a file, not a folder to write %s in", filepath.Dir(final), filepath.Base(final)))
			continue
		}
		fi, err := os.Lstat(final)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			fail(out.key, err)
		case out.dir && !fi.IsDir():
			fail(out.key, fmt.Errorf("%s is not a folder: move it away, or name another folder", final))
		case out.dir:
			if err := replaceable(final); err != nil {
				fail(out.key, err)
			}
		case fi.IsDir():
			fail(out.key, fmt.Errorf("%s is a folder, which a build never replaces with a file: move it away, or name another file", final))
		}
	}
	return errors.Join(errs...)
}

// ErrNotOurs reports a folder at a dir output's path that holds files no
// build wrote: the build refuses to replace it.
var ErrNotOurs = errors.New("holds files no build wrote")

// replaceable reports why the folder dir is not a media tree an earlier
// build wrote, which a new build may replace whole: it must hold the
// media manifest, and every file in it must be one the manifest lists,
// at the size it lists (links and special files only under rootcopy,
// which the manifest does not list). Anything else is somebody's, and
// the build leaves the folder alone.
func replaceable(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(overlays.ManifestPath)))
	if err != nil {
		return fmt.Errorf("%s %w: it has no %s, so no build wrote it; move it away, or name another folder",
			dir, ErrNotOurs, overlays.ManifestPath)
	}
	var m media.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s %w: its %s does not read (%v); move it away, or name another folder", dir, ErrNotOurs, overlays.ManifestPath, err)
	}
	listed := make(map[string]int64, len(m.Files))
	for _, f := range m.Files {
		listed[f.Path] = f.Size
	}
	var foreign []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir(), rel == overlays.ManifestPath:
			return nil
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if size, ok := listed[rel]; ok && size == fi.Size() {
				return nil
			}
		case strings.HasPrefix(rel, overlays.RootcopyDir+"/"):
			return nil
		}
		foreign = append(foreign, rel)
		return nil
	})
	if err != nil {
		return err
	}
	if len(foreign) > 0 {
		more := ""
		if len(foreign) > 5 {
			foreign, more = foreign[:5], fmt.Sprintf(" and %d more", len(foreign)-5)
		}
		return fmt.Errorf("%s %w (%s%s): a build replaces only media it wrote; move them out, or name another folder",
			dir, ErrNotOurs, strings.Join(foreign, ", "), more)
	}
	return nil
}

// replaceDir moves the folder staged to final, moving an earlier build's
// folder there to aside (in the staging folder, removed with it).
func replaceDir(final, staged, aside string) error {
	if _, err := os.Lstat(final); err == nil {
		if err := os.Rename(final, aside); err != nil {
			return err
		}
		if err := os.Rename(staged, final); err != nil {
			os.Rename(aside, final) // put it back; the error says what failed
			return err
		}
		return nil
	}
	return os.Rename(staged, final)
}

// findDebDir is where the Debian packages are looked for when no folder is
// given: the nearest .cache/debs in the spec's folder or above it (make
// fetch fills the repository's), else .cache/debs in the working
// directory.
func findDebDir(specDir string) string {
	for d := specDir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, ".cache", "debs")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	p, err := filepath.Abs(filepath.Join(".cache", "debs"))
	if err != nil {
		return filepath.Join(".cache", "debs")
	}
	return p
}

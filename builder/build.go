// Package builder turns a spec into boot media: it builds (or finds in the
// cache) the kernel parts and every module, lays out the media tree and
// writes the outputs the spec asks for (ISO, USB image, folder).
package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/modules"
	"byzantium/modules/deps"
	"byzantium/modules/manifest"
	"byzantium/modules/squashfs"
	"byzantium/overlays"
)

// Options configures Build.
type Options struct {
	// Out is the folder the outputs are written to (created if missing).
	Out string
	// Cache keeps built artifacts between builds; Cache.Refresh rebuilds
	// everything (--no-cache).
	Cache *cache.Cache
	// Epoch is SOURCE_DATE_EPOCH: every time in the outputs derives from it.
	Epoch time.Time
	// InitBinary is the byz-init executable (static) for the initramfs.
	InitBinary string
	// Tool identifies the builder in cache keys; when it changes, every
	// artifact is rebuilt. Default: the sha256 of the running executable.
	Tool string
	// DebDir holds the Debian packages the bootloader files come from
	// (isolinux, syslinux-common, shim-signed, shim-helpers-amd64-signed,
	// grub-efi-amd64-signed), found by package name. Empty: the nearest
	// .cache/debs in the spec's folder or above it (where make fetch puts
	// them), else .cache/debs in the working directory.
	DebDir string
	// WorkDir is where the build makes its work folder (default: in the
	// cache, so that media files are hard links to cached artifacts).
	WorkDir string
	Logf    func(format string, args ...any)
}

// Result says what Build wrote and how much it could reuse.
type Result struct {
	Outputs      []string
	Hits, Misses int64
}

type builder struct {
	spec *spec.Spec
	opts Options
	// cache and tool are opts.Cache and opts.Tool with defaults applied.
	cache *cache.Cache
	tool  string
	run   *run
	// debDirFound: opts.DebDir was looked for, not given.
	debDirFound bool
	// biosMBR and biosCore are GRUB's BIOS boot code for the USB image,
	// made up front with the loader so a GRUB problem stops the build
	// before any work.
	biosMBR, biosCore []byte
}

// layer is a folder of the media tree and the modules in it.
type layer struct {
	dir  string // a media folder (overlays.FolderBase…), also the spec's key
	mods []spec.Module
}

// built is one module file ready for the media tree.
type built struct {
	layer, file, path string // file is NNN-name.xzm; path in the cache
}

// Build builds the media the spec describes.
func Build(s *spec.Spec, opts Options) (*Result, error) {
	return BuildContext(context.Background(), s, opts)
}

// BuildContext is Build, stopped by ctx. A build that fails or is stopped
// leaves the output folder as it found it: the outputs of the build before
// it, no temporary file, and no folder it made. When ctx is done it removes
// what it made and returns ctx's error without waiting for the step under
// way to end: a module being compressed goes on into a file that is gone
// until it fails or the process exits.
func BuildContext(ctx context.Context, s *spec.Spec, opts Options) (*Result, error) {
	b := &builder{spec: s, opts: opts, cache: opts.Cache, tool: opts.Tool}
	if b.cache == nil {
		b.cache = &cache.Cache{Dir: filepath.Join(opts.Out, ".cache")}
	}
	if b.tool == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		if b.tool, err = fileDigest(exe); err != nil {
			return nil, err
		}
	}
	if b.opts.Logf == nil {
		b.opts.Logf = func(string, ...any) {}
	}
	if b.opts.DebDir == "" {
		b.opts.DebDir, b.debDirFound = findDebDir(s.Dir), true
	}
	// What the outputs would replace is checked before anything is made.
	if err := b.checkOutputs(); err != nil {
		return nil, err
	}
	// So are the modules' stacking and a console the spec's setting would
	// not own: a spec that cannot build makes no folder and takes no lock.
	if err := b.checkStack(); err != nil {
		return nil, err
	}
	if err := b.checkInittabDirs(); err != nil {
		return nil, err
	}
	r, err := start(b.cache, opts.Out, opts.WorkDir, b.opts.Logf)
	if err != nil {
		return nil, err
	}
	b.run = r
	type outcome struct {
		res *Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := b.build()
		done <- outcome{res, err}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		if !r.stop() {
			r.close(true)
			return nil, fmt.Errorf("build: %w", context.Cause(ctx))
		}
		o = <-done // committed: the outputs are in place, the build is over
	}
	if err := r.close(o.err != nil); err != nil && o.err == nil {
		o.err = err
	}
	if o.err != nil {
		return nil, o.err
	}
	return o.res, nil
}

// build is the build proper, in the run's folders.
func (b *builder) build() (*Result, error) {
	// The bootloader packages are there and hold their files.
	loader, err := b.bootLoader()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(b.opts.InitBinary); err != nil {
		return nil, fmt.Errorf("byz-init binary: %w", err)
	}
	k, err := b.kernelStage()
	if err != nil {
		return nil, err
	}
	mods, err := b.moduleStage()
	if err != nil {
		return nil, err
	}
	if err := b.checkInittab(mods); err != nil {
		return nil, err
	}
	console, err := b.consoleModule()
	if err != nil {
		return nil, err
	}
	mods = append(mods, console)
	outs, err := b.mediaStage(loader, k, mods)
	if err != nil {
		return nil, err
	}
	h, m := b.cache.Stats()
	return &Result{Outputs: outs, Hits: h, Misses: m}, nil
}

// cached is cache.Build with the artifact made in the run's work folder.
func (b *builder) cached(key, ext string, make func(path string) error) (string, bool, error) {
	tmp := ""
	if b.run != nil && b.opts.WorkDir == "" { // else maybe another file system: the cache makes its own
		tmp = b.run.work.Path
	}
	return b.cache.BuildIn(tmp, key, ext, make)
}

func (b *builder) logf(format string, args ...any) { b.opts.Logf(format, args...) }

func (b *builder) epochKey() string { return strconv.FormatInt(b.opts.Epoch.Unix(), 10) }

// checkStack checks, from the spec alone and before anything is built, that
// the modules stack: every dependency present (the kernel module is
// "kernel"), no cycle, no conflict.
func (b *builder) checkStack() error {
	ms := []*manifest.Manifest{{Name: spec.KernelModule}}
	for _, l := range [][]spec.Module{b.spec.Base, b.spec.Modules, b.spec.Optional} {
		for _, m := range l {
			ms = append(ms, &manifest.Manifest{Name: m.Name, Depends: m.Depends})
		}
	}
	g, err := deps.New(ms)
	if err == nil {
		_, err = g.Order()
	}
	if err != nil {
		return fmt.Errorf("%s: the modules do not stack: %w", b.spec.File, err)
	}
	return nil
}

// moduleStage builds every module of the spec, each under a key made of
// its settings and the digests of its sources, so that changing one
// module's inputs rebuilds that module alone.
func (b *builder) moduleStage() ([]built, error) {
	var out []built
	for _, l := range []layer{{overlays.FolderBase, b.spec.Base}, {overlays.FolderModules, b.spec.Modules}, {overlays.FolderOptional, b.spec.Optional}} {
		for i, m := range l.mods {
			where := b.spec.Position(fmt.Sprintf("%s[%d]", l.dir, i))
			// The services are part of the key: they are in the module's
			// manifest, so changing one must rebuild the module.
			services, err := json.Marshal(m.Services)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", where, m.Name, err)
			}
			parts := []string{"module", b.tool, b.epochKey(), m.Name, m.Comp, strconv.Itoa(m.Level),
				strconv.Itoa(m.BlockSize), strings.Join(m.Depends, ","), string(services)}
			if len(m.Exclude) > 0 { // only then: other modules keep their keys
				parts = append(parts, "exclude", strings.Join(m.Exclude, "\x00"))
			}
			for _, src := range m.Sources {
				d, err := modules.Digest(src, &b.opts.Epoch)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", where, m.Name, err)
				}
				parts = append(parts, src, d)
			}
			comp, err := squashfs.ParseCompressor(m.Comp)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", where, m.Name, err)
			}
			p, hit, err := b.cached(cache.Key(parts...), ".xzm", func(path string) error {
				b.logf("building %s/%s", l.dir, m.Name)
				_, err := modules.Create(m.Sources, path, modules.CreateOptions{
					Name: m.Name, Depends: m.Depends, Services: m.Services, Epoch: &b.opts.Epoch, SourceNames: b.sourceNames(m.Sources),
					Exclude: m.Exclude, Squashfs: squashfs.Options{Compressor: comp, Level: m.Level, BlockSize: m.BlockSize}})
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("%s: module %s: %w", where, m.Name, err)
			}
			if hit {
				b.logf("cached %s/%s", l.dir, m.Name)
			}
			// Base modules count from 001: 000 is the kernel's.
			out = append(out, built{layer: l.dir, file: fmt.Sprintf("%03d-%s.xzm", i+1, m.Name), path: p})
		}
	}
	return out, nil
}

// sourceNames gives the names a module's manifest records for its sources:
// paths relative to the spec's folder, the same on every machine. A
// transport's path (npm:PATH, oci:PATH[:TAG]) is made relative too.
func (b *builder) sourceNames(srcs []string) []string {
	names := make([]string, len(srcs))
	for i, src := range srcs {
		names[i] = src
		prefix, p, tag := "", src, ""
		for _, t := range []string{"oci:", "docker-archive:", "npm:"} {
			if rest, ok := strings.CutPrefix(src, t); ok {
				prefix = t
				if p, tag, ok = strings.Cut(rest, ":"); ok {
					tag = ":" + tag
				}
			}
		}
		if rel, err := filepath.Rel(b.spec.Dir, p); err == nil && filepath.IsAbs(p) {
			names[i] = prefix + filepath.ToSlash(rel) + tag
		}
	}
	return names
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err // a read error names the file
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

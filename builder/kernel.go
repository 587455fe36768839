package builder

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"byzantium/builder/cache"
	"byzantium/builder/initramfs"
	"byzantium/builder/kernel"
	"byzantium/builder/spec"
	"byzantium/modules"
	"byzantium/modules/deb"
	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/modules/squashfs"
)

// kernelParts are the boot artifacts made from the kernel package.
type kernelParts struct {
	vmlinuz, initrd, module string // paths in the cache
}

// kernelStage turns the spec's kernel .deb and the byz-init binary into a
// vmlinuz, an initramfs and 000-kernel.xzm, each cached under the digests
// of its inputs. The package (hundreds of MB of modules for the generic
// kernel) is unpacked only when one of them is missing from the cache.
func (b *builder) kernelStage() (*kernelParts, error) {
	src, debDigest, err := b.kernelSource()
	if err != nil {
		return nil, fmt.Errorf("%s: kernel: %w", b.spec.Position("kernel"), err)
	}
	initDigest, err := fileDigest(b.opts.InitBinary)
	if err != nil {
		return nil, fmt.Errorf("byz-init binary: %w", err)
	}
	// busybox in the initramfs is the rescue shell byz-init offers when
	// the boot fails.
	rescueDeb, rescueDigest := b.rescueDeb()
	parts := &kernelParts{}
	// Build the misses from one extraction of the package.
	var k *kernel.Kernel
	var tmp string
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	extract := func() (*kernel.Kernel, error) {
		if k != nil {
			return k, nil
		}
		var err error
		if tmp, err = os.MkdirTemp(b.run.work.Path, "kernel-"); err != nil {
			return nil, err
		}
		b.logf("unpacking %s", src.name)
		r, closeFn, err := src.open()
		if err != nil { // the error names the file
			return nil, fmt.Errorf("%s: kernel: %w", b.spec.Position("kernel"), err)
		}
		defer closeFn()
		// kernel.Extract makes the folders of each file it writes: a
		// section, so a stopped build removes the tree only once it ends.
		err = b.run.section(func() error {
			var err error
			k, err = kernel.Extract(b.run.reader(r), kernel.ExtractOptions{
				Vmlinuz:    filepath.Join(tmp, "vmlinuz"),
				ModulesDir: filepath.Join(tmp, "root/lib/modules/tree"),
			})
			return err
		})
		if err != nil {
			// kernel.Extract's errors start "kernel:"; a bad package's
			// name it already.
			if !strings.Contains(err.Error(), src.name) {
				err = fmt.Errorf("%s: %w", src.name, err)
			}
			return nil, fmt.Errorf("%s: %w", b.spec.Position("kernel"), err)
		}
		// The module tree goes under its real version in the module.
		if err := os.Rename(filepath.Join(tmp, "root/lib/modules/tree"), filepath.Join(tmp, "root/lib/modules", k.Version)); err != nil {
			return nil, err
		}
		return k, nil
	}
	moduleDir := func() string { return filepath.Join(tmp, "root/lib/modules", k.Version) }
	for _, a := range []struct {
		key, ext string
		dst      *string
		make     func(out string) error
	}{
		{cache.Key("vmlinuz", b.tool, debDigest), "", &parts.vmlinuz, func(out string) error {
			return copyFile(filepath.Join(tmp, "vmlinuz"), out)
		}},
		{cache.Key("kernel-module", b.tool, debDigest, b.epochKey()), ".xzm", &parts.module, func(out string) error {
			b.logf("building 000-kernel.xzm (%s)", k.Version)
			_, err := modules.Create([]string{filepath.Join(tmp, "root")}, out, modules.CreateOptions{
				Name: spec.KernelModule, Version: k.Version, Epoch: &b.opts.Epoch,
				SourceNames: []string{src.name + "#lib/modules/" + k.Version},
				Squashfs:    squashfs.Options{Compressor: squashfs.Zstd}})
			return err
		}},
		{cache.Key("initrd", b.tool, debDigest, initDigest, rescueDigest, b.epochKey(),
			strings.Join(initramfs.RequiredModules, ","), strings.Join(initramfs.HardwareModules, ","), initramfs.SaveDatCipher), ".zst", &parts.initrd,
			func(out string) error { return b.writeInitrd(k, moduleDir(), rescueDeb, out) }},
	} {
		p, _, err := b.cached(a.key, a.ext, func(out string) error {
			if _, err := extract(); err != nil {
				return err
			}
			return a.make(out)
		})
		if err != nil {
			return nil, err
		}
		*a.dst = p
	}
	return parts, nil
}

// writeInitrd writes the initramfs: byz-init as /init and the kernel
// modules it needs to reach the media and its persistence
// (initramfs.Modules).
func (b *builder) writeInitrd(k *kernel.Kernel, modDir, rescueDeb, out string) error {
	all, note, err := initramfs.Modules(k.Modules)
	if err != nil {
		return fmt.Errorf("%s: kernel %s: %w", b.spec.Position("kernel"), k.Version, err)
	}
	if note != nil {
		b.logf("note: kernel %s cannot boot from some hardware: %v", k.Version, note)
	}
	files := append([]initramfs.File{{Path: "init", Src: b.opts.InitBinary, Mode: 0o755}},
		initramfs.ModuleFiles(modDir, k.Version, all)...)
	if rescueDeb != "" {
		bb, err := extractFile(rescueDeb, "bin/busybox", filepath.Join(filepath.Dir(out), "busybox"))
		if err != nil {
			return err
		}
		files = append(files, initramfs.File{Path: "bin/busybox", Src: bb, Mode: 0o755},
			initramfs.File{Path: "bin/sh", Type: entry.TypeSymlink, Linkname: "busybox"})
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	b.logf("building initramfs (%d kernel modules)", len(all))
	if err := initramfs.Write(f, files, initramfs.Options{ModTime: b.opts.Epoch}); err != nil {
		return err
	}
	if fi, err := f.Stat(); err == nil {
		b.logf("initramfs: %d bytes", fi.Size())
	}
	return f.Close()
}

// rescueDeb finds busybox-static in the package folder, and its digest for
// the initramfs's cache key. Without it the initramfs has no shell, and a
// failed boot can only print what to try. Only a spec whose console gives
// a root shell (console: {shell: root}) gets one: the rescue shell is
// root's, and asks for no password.
func (b *builder) rescueDeb() (path, digest string) {
	if !b.spec.Console.Open() {
		b.logf("the initramfs has no rescue shell (console shell: %s)", b.spec.Console.ShellOrDefault())
		return "", "no-rescue-shell"
	}
	m, _ := filepath.Glob(filepath.Join(b.opts.DebDir, "busybox-static_*.deb"))
	if len(m) == 0 {
		b.logf("note: no busybox-static package in %s: the initramfs will have no rescue shell", b.opts.DebDir)
		return "", "no-rescue-shell"
	}
	d, err := fileDigest(m[len(m)-1])
	if err != nil {
		return "", "no-rescue-shell"
	}
	return m[len(m)-1], d
}

// extractFile writes the file at name inside the .deb to dst.
func extractFile(debPath, name, dst string) (string, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	p, err := deb.Open(f, debPath)
	if err != nil {
		return "", err
	}
	defer p.Close()
	for {
		h, err := p.Next()
		if err == io.EOF {
			return "", fmt.Errorf("%s: no %s in the package", debPath, name)
		}
		if err != nil {
			return "", err
		}
		if h.Path != name || h.Type != entry.TypeRegular {
			continue
		}
		out, err := os.Create(dst)
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(out, p); err != nil {
			out.Close()
			return "", fmt.Errorf("%s: %s: %w", debPath, name, err)
		}
		return dst, out.Close()
	}
}

// kernelInput is the kernel as the spec gives it: a linux-image .deb, or a
// vmlinuz and its /lib/modules/VERSION tree. Either is read as the same
// stream: boot/vmlinuz-VERSION and lib/modules/VERSION/...
type kernelInput struct {
	name string
	open func() (entry.Reader, func(), error)
}

// kernelSource describes the kernel input and digests it for the cache.
func (b *builder) kernelSource() (kernelInput, string, error) {
	k := b.spec.Kernel
	if k.Deb != "" {
		d, err := modules.Digest(k.Deb, nil)
		if err != nil {
			return kernelInput{}, "", err
		}
		return kernelInput{name: filepath.Base(k.Deb), open: func() (entry.Reader, func(), error) {
			f, err := os.Open(k.Deb)
			if err != nil {
				return nil, nil, err
			}
			p, err := deb.Open(f, k.Deb)
			if err != nil {
				f.Close()
				return nil, nil, err
			}
			return p, func() { p.Close(); f.Close() }, nil
		}}, d, nil
	}
	version := filepath.Base(filepath.Clean(k.Modules))
	vd, err := fileDigest(k.Vmlinuz)
	if err != nil {
		return kernelInput{}, "", err
	}
	md, err := modules.Digest(k.Modules, nil)
	if err != nil {
		return kernelInput{}, "", err
	}
	return kernelInput{name: filepath.Base(k.Vmlinuz), open: func() (entry.Reader, func(), error) {
		v, err := os.Open(k.Vmlinuz)
		if err != nil {
			return nil, nil, err
		}
		fi, err := v.Stat()
		if err != nil {
			v.Close()
			return nil, nil, err
		}
		tree, err := hostfs.NewReader(k.Modules)
		if err != nil {
			v.Close()
			return nil, nil, err
		}
		img := &entry.Slice{Headers: []*entry.Header{{Path: "boot/vmlinuz-" + version, Type: entry.TypeRegular,
			Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime()}}}
		r := entry.Concat(&fileEntry{Reader: img, body: v}, entry.Prefix(tree, "lib/modules/"+version))
		return r, func() { tree.Close(); v.Close() }, nil
	}}, cache.Key(vd, md), nil
}

// fileEntry serves the body of its one entry from a file, not from memory.
type fileEntry struct {
	entry.Reader
	body io.Reader
}

func (f *fileEntry) Read(p []byte) (int, error) { return f.body.Read(p) }

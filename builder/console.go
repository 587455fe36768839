package builder

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/modules"
	"byzantium/modules/squashfs"
	"byzantium/overlays"
	"byzantium/runtime/mesh/meshcfg"
)

// InittabPath is where busybox init reads its table, in the root and in
// the console module.
const InittabPath = "etc/inittab"

// Inittab returns the /etc/inittab of a node whose serial console offers
// shell (spec.ShellLogin, ShellRoot or ShellNone; "" is ShellLogin). It
// is the whole table, not a fragment: busybox init reads one file, and a
// node without it gets busybox's built-in table, which opens a root shell
// on every console.
func Inittab(shell string) ([]byte, error) {
	var console string
	switch shell {
	case spec.ShellLogin, "":
		shell = spec.ShellLogin
		console = `# console shell: login. byz console asks for the node's admin password (the
# panel's, checked by byzd with the panel's rate limit) before it starts a
# root shell, and asks again when the shell ends.
ttyS0::respawn:/usr/bin/byz console
`
	case spec.ShellRoot:
		console = `# console shell: root. A root shell WITHOUT A PASSWORD for whoever types on the
# first serial port, which IPMI and serial-over-LAN often reach too: for test
# images and labs (docs/security.md).
ttyS0::respawn:-/bin/sh
`
	case spec.ShellNone:
		console = `# console shell: none. No shell on the serial port; the kernel and byzd still
# print there.
`
	default:
		return nil, fmt.Errorf("console shell %q: want %s, %s or %s", shell, spec.ShellLogin, spec.ShellRoot, spec.ShellNone)
	}
	return []byte(`# /etc/inittab for busybox init, which byz-init starts after switch_root.
# Written by byz build from the spec's console setting (console: {shell: ` + shell + `});
# a rebuild overwrites edits. It installs the busybox applet links on the
# overlay, names the node, keeps byzd running and, at shutdown, saves the
# changes kept in RAM (changes=EXIT:) first.
::sysinit:/bin/busybox mkdir -p /usr/bin /usr/sbin
::sysinit:/bin/busybox --install -s
::sysinit:/bin/busybox hostname -F /etc/hostname
::sysinit:/bin/busybox mkdir -p /var/lib/byzantium /tmp
::respawn:/usr/sbin/byzd --state /var/lib/byzantium
` + console + `::ctrlaltdel:/bin/busybox reboot
::shutdown:/usr/bin/byz persist save --at-shutdown
::shutdown:/bin/busybox sync
`), nil
}

// consoleModule builds the module that carries the node's settings from
// the spec: /etc/inittab for the console setting, and byzd's mesh
// defaults (meshcfg.ImageFile, from the spec's mesh section). It stacks
// last in base, so it is loaded whatever load=, noload= or base_only say
// about the other folders; no module above it may carry an inittab of
// its own (checkInittab).
func (b *builder) consoleModule() (built, error) {
	shell := b.spec.Console.ShellOrDefault()
	inittab, err := Inittab(shell)
	if err != nil {
		return built{}, fmt.Errorf("%s: %w", b.spec.Position("console.shell"), err)
	}
	mesh, err := b.spec.Mesh.Image().Marshal()
	if err != nil {
		return built{}, fmt.Errorf("%s: %w", b.spec.Position("mesh"), err)
	}
	file := fmt.Sprintf("%03d-%s.xzm", len(b.spec.Base)+1, spec.ConsoleModule)
	p, hit, err := b.cache.Build(cache.Key("console-module", b.tool, b.epochKey(), string(inittab), string(mesh)), ".xzm", func(out string) error {
		b.logf("building base/%s (console shell: %s)", spec.ConsoleModule, shell)
		// A tarball rather than a folder: the file is root's and dated
		// SOURCE_DATE_EPOCH wherever and by whomever the build runs.
		src, err := os.CreateTemp(b.opts.WorkDir, "console-*.tar")
		if err != nil {
			return err
		}
		defer os.Remove(src.Name())
		if _, err := src.Write(settingsTar(inittab, mesh, b.opts.Epoch)); err != nil {
			src.Close()
			return err
		}
		if err := src.Close(); err != nil {
			return err
		}
		_, err = modules.Create([]string{src.Name()}, out, modules.CreateOptions{
			Name: spec.ConsoleModule, Epoch: &b.opts.Epoch, SourceNames: []string{"byz build: console shell " + shell},
			Squashfs: squashfs.Options{Compressor: squashfs.Zstd}})
		return err
	})
	if err != nil {
		return built{}, fmt.Errorf("%s: console module: %w", b.spec.File, err)
	}
	if hit {
		b.logf("cached base/%s", spec.ConsoleModule)
	}
	return built{layer: overlays.FolderBase, file: file, path: p}, nil
}

// inittabTar is a tarball holding etc/ and etc/inittab, owned by root.
func inittabTar(inittab []byte, mtime time.Time) []byte {
	return rootTar(mtime, []string{"etc/"}, map[string][]byte{InittabPath: inittab})
}

// settingsTar is the console module's tarball: /etc/inittab and byzd's
// mesh defaults (no secret in it: world-readable), owned by root.
func settingsTar(inittab, mesh []byte, mtime time.Time) []byte {
	return rootTar(mtime, []string{"etc/", path.Dir(meshcfg.ImageFile) + "/"},
		map[string][]byte{InittabPath: inittab, meshcfg.ImageFile: mesh})
}

// rootTar is a tarball of dirs (0755) then files (0644, in name order),
// owned by root and dated mtime.
func rootTar(mtime time.Time, dirs []string, files map[string][]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A bytes.Buffer does not fail.
	for _, d := range dirs {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime})
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n])), ModTime: mtime})
		tw.Write(files[n])
	}
	tw.Close()
	return buf.Bytes()
}

// errOwnInittab is a module or rootcopy folder that brings its own
// /etc/inittab, which would stack over the console module's and undo the
// console setting without a word.
var errOwnInittab = errors.New("has its own /etc/inittab")

const inittabFix = "remove it: byz build writes /etc/inittab from the spec's console setting (console: {shell: login|root|none}); " +
	"an out/runtime assembled before it did still has one (make runtime removes it)"

// checkInittab refuses built modules, other than optional ones, that
// carry /etc/inittab (whatever their sources: a .deb or a tarball may
// bring one too): the build writes it from the console setting.
func (b *builder) checkInittab(mods []built) error {
	var errs []error
	for _, m := range mods {
		if m.layer == overlays.FolderOptional {
			continue // never stacked into the root at boot by the build's own menu
		}
		has, err := moduleHas(m.path, InittabPath)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", m.layer, m.file, err)
		}
		if has {
			p := b.modulePath(m)
			errs = append(errs, &spec.Error{Pos: b.spec.Position(p), Path: p,
				Err: fmt.Errorf("module %s %w: %s", strings.TrimSuffix(m.file, ".xzm"), errOwnInittab, inittabFix)})
		}
	}
	return errors.Join(errs...)
}

// checkInittabDirs is checkInittab for the folders among the spec's
// sources and its rootcopy folders, before anything is built.
func (b *builder) checkInittabDirs() error {
	var errs []error
	for l, list := range [][]spec.Module{b.spec.Base, b.spec.Modules} {
		for i, m := range list {
			for j, src := range m.Sources {
				if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
					continue
				}
				if _, err := os.Lstat(filepath.Join(src, InittabPath)); err == nil {
					p := fmt.Sprintf("%s[%d].sources[%d]", []string{"base", "modules"}[l], i, j)
					errs = append(errs, &spec.Error{Pos: b.spec.Position(p), Path: p,
						Err: fmt.Errorf("%s, a source of module %s, %w: %s", src, m.Name, errOwnInittab, inittabFix)})
				}
			}
		}
	}
	for i, dir := range b.spec.Rootcopy {
		if _, err := os.Lstat(filepath.Join(dir, InittabPath)); err == nil {
			p := fmt.Sprintf("rootcopy[%d]", i)
			errs = append(errs, &spec.Error{Pos: b.spec.Position(p), Path: p,
				Err: fmt.Errorf("rootcopy folder %s %w: %s", dir, errOwnInittab, inittabFix)})
		}
	}
	return errors.Join(errs...)
}

// modulePath is the key path of a built module's entry in the spec
// ("modules[0]"): its file is numbered from 1 in its layer.
func (b *builder) modulePath(m built) string {
	var n int
	fmt.Sscanf(m.file, "%03d-", &n)
	return fmt.Sprintf("%s[%d]", m.layer, n-1)
}

// moduleHas reports whether the module file holds path.
func moduleHas(file, path string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	r, err := squashfs.NewReader(f, fi.Size())
	if err != nil {
		return false, err
	}
	_, err = r.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

package spec

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"byzantium/modules"
	"byzantium/modules/manifest"
	"byzantium/modules/squashfs"
)

// KernelModule is the name of the module the build makes from the kernel's
// /lib/modules tree (000-kernel.xzm): reserved, and a valid dependency.
const KernelModule = "kernel"

// MinUSBSize is the smallest USB image accepted: a kernel, an initramfs
// and a base already take tens of MiB, and FAT32 needs at least 65,525
// clusters, which a smaller image could only reach with sub-KiB clusters.
const MinUSBSize = 64 << 20

// MaxUSBSize is the largest USB image accepted. The FAT32 partition that
// holds the media ends within 2 TiB (2^32 sectors of 512 bytes), the
// image is written whole onto a stick, and a bigger file only wastes the
// time of writing it: keep room for persistence with spare, not size.
const MaxUSBSize = 2 << 40

// StagePrefix starts the names of the folders a build stages its outputs
// in (in the output directory): no output may take such a name.
const StagePrefix = ".byz-build-"

// layers are the module lists in stacking order: a module may depend only
// on its own layer or one below, or it could be loaded without what it
// needs.
var layers = []string{"base", "modules", "optional"}

// validator collects every problem with a spec.
type validator struct {
	s    *Spec
	opts Options
	errs []error
}

func (v *validator) failf(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{Pos: v.s.Position(path), Path: path, Err: fmt.Errorf(format, args...)})
}

func (v *validator) fail(path string, err error) {
	v.errs = append(v.errs, &Error{Pos: v.s.Position(path), Path: path, Err: err})
}

// Validate checks every value of s that can be checked before a build
// writes anything, and returns every problem found, joined, each an *Error
// at the position of the offending value. Unless opts.SkipInputChecks is
// set, it also checks that every input exists and is of the right kind.
func (s *Spec) Validate(opts Options) error {
	v := &validator{s: s, opts: opts}
	if !manifest.ValidName(s.Name) {
		v.failf("name", "%q is not a valid name: use lower-case letters, digits and + . _ - (at most 64)", s.Name)
	}
	if s.Version != "" && strings.ContainsFunc(s.Version, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		v.failf("version", "%q has spaces or control characters", s.Version)
	}
	v.kernel()
	v.text("cmdline", s.Cmdline)
	v.modules()
	for i, dir := range s.Rootcopy {
		v.input(fmt.Sprintf("rootcopy[%d]", i), dir, true)
	}
	v.menu()
	v.console()
	v.mesh()
	v.outputs()
	if len(v.errs) > 0 {
		return joinSorted(v.errs)
	}
	return nil
}

// text checks a string that ends up on a kernel command line or in a
// bootloader config, where a newline would start a new directive.
func (v *validator) text(path, s string) {
	if i := strings.IndexFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }); i >= 0 {
		v.failf(path, "control character %U at offset %d: it must be one line of text", rune(s[i]), i)
	}
}

func (v *validator) kernel() {
	k := v.s.Kernel
	switch {
	case k.Deb != "" && (k.Vmlinuz != "" || k.Modules != ""):
		v.failf("kernel", "give either deb, or vmlinuz and modules, not both")
	case k.Deb != "":
		if !strings.HasSuffix(strings.ToLower(k.Deb), ".deb") {
			v.failf("kernel.deb", "%s is not a .deb: name a linux-image package, or use vmlinuz and modules", k.Deb)
		} else {
			v.input("kernel.deb", k.Deb, false)
		}
	case k.Vmlinuz == "" && k.Modules == "":
		v.failf("kernel", "missing required key %q (or %q and %q)", "deb", "vmlinuz", "modules")
	case k.Vmlinuz == "":
		v.failf("kernel", "missing required key %q (modules is given)", "vmlinuz")
	case k.Modules == "":
		v.failf("kernel", "missing required key %q (vmlinuz is given)", "modules")
	default:
		v.input("kernel.vmlinuz", k.Vmlinuz, false)
		v.input("kernel.modules", k.Modules, true)
	}
}

// input checks that a local input exists and is a directory or a file as
// wanted; it reports whether it is fine (or unchecked).
func (v *validator) input(path, name string, dir bool) bool {
	if v.opts.SkipInputChecks {
		return true
	}
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		v.fail(path, err)
	case dir && !fi.IsDir():
		v.failf(path, "%s is not a directory", name)
	case !dir && !fi.Mode().IsRegular():
		v.failf(path, "%s is not a regular file", name)
	default:
		return true
	}
	return false
}

func (v *validator) modules() {
	if len(v.s.Base) == 0 {
		v.failf("base", "no modules: the base must provide the root filesystem (busybox-static at least)")
	}
	type seen struct {
		path  string
		layer int
	}
	names := map[string]seen{}
	services := map[string]serviceDecl{}
	var serviceOrder []string
	for l, list := range [][]Module{v.s.Base, v.s.Modules, v.s.Optional} {
		for i, m := range list {
			p := fmt.Sprintf("%s[%d]", layers[l], i)
			switch first, dup := names[m.Name]; {
			case !manifest.ValidName(m.Name):
				v.failf(p+".name", "%q is not a valid module name: use lower-case letters, digits and + . _ - (at most 64)", m.Name)
			case m.Name == KernelModule:
				v.failf(p+".name", "%q is reserved for the module built from the kernel's /lib/modules", m.Name)
			case dup:
				v.failf(p+".name", "module %q is already defined at %s (%s); names are unique across base, modules and optional",
					m.Name, v.s.Position(first.path+".name"), first.path)
			default:
				names[m.Name] = seen{p, l}
			}
			v.module(p, m)
			v.services(p, m, services, &serviceOrder)
		}
	}
	v.servicesAcross(services, serviceOrder)
	// Dependencies need every name first, so they are a second pass.
	for l, list := range [][]Module{v.s.Base, v.s.Modules, v.s.Optional} {
		for i, m := range list {
			for j, dep := range m.Depends {
				p := fmt.Sprintf("%s[%d].depends[%d]", layers[l], i, j)
				target, ok := names[dep]
				switch {
				case dep == m.Name:
					v.failf(p, "%s depends on itself", m.Name)
				case dep == KernelModule:
				case !ok:
					v.failf(p, "no module named %q in this spec", dep)
				case target.layer > l:
					v.failf(p, "%s is in %s but depends on %s in %s, which is not always loaded before it",
						m.Name, layers[l], dep, layers[target.layer])
				}
			}
		}
	}
}

func (v *validator) module(p string, m Module) {
	if len(m.Sources) == 0 {
		v.failf(p+".sources", "no sources: a module needs at least one")
	}
	for i, ref := range m.Sources {
		v.source(fmt.Sprintf("%s.sources[%d]", p, i), ref)
	}
	switch m.Comp {
	case "", "zstd":
		if m.Level < 0 || m.Level > 22 {
			v.failf(p+".level", "zstd level %d: want 1 to 22, or 0 for the default", m.Level)
		}
	case "gzip":
		if m.Level < 0 || m.Level > 9 {
			v.failf(p+".level", "gzip level %d: want 1 to 9, or 0 for the default", m.Level)
		}
	case "xz":
		if m.Level != 0 {
			v.failf(p+".level", "xz has no levels here: remove level")
		}
	default:
		v.failf(p+".comp", "%q: want zstd, gzip or xz", m.Comp)
	}
	if bs := m.BlockSize; bs != 0 && (bs < squashfs.MinBlockSize || bs > squashfs.MaxBlockSize || bits.OnesCount(uint(bs)) != 1) {
		v.failf(p+".block-size", "%d: want a power of two from 4K to 1M", bs)
	}
	for j, pat := range m.Exclude {
		if _, err := path.Match(pat, ""); err != nil || strings.HasPrefix(pat, "/") {
			v.failf(fmt.Sprintf("%s.exclude[%d]", p, j), "%q: want a path.Match pattern without a leading slash (usr/share/doc/*)", pat)
		}
	}
	for j, dep := range m.Depends {
		if !manifest.ValidName(dep) {
			v.failf(fmt.Sprintf("%s.depends[%d]", p, j), "%q is not a module name", dep)
		}
	}
}

// source checks one source reference the way the build will read it.
func (v *validator) source(path, ref string) {
	if v.opts.SkipInputChecks {
		return
	}
	if _, err := modules.ParseSource(ref); err != nil {
		v.fail(path, err)
		return
	}
	// ParseSource leaves oci:PATH and docker-archive:FILE to the OCI
	// reader; their paths are local inputs, so check them now too.
	for _, t := range transports {
		if rest, ok := strings.CutPrefix(ref, t); ok {
			p, _, _ := strings.Cut(rest, ":")
			if p == "" {
				v.failf(path, "%s: no path after %s", ref, t)
			} else if _, err := os.Stat(p); err != nil {
				v.fail(path, err)
			}
		}
	}
}

func (v *validator) menu() {
	defaults := ""
	labels := map[string]string{}
	for i, e := range v.s.Menu {
		p := fmt.Sprintf("menu[%d]", i)
		if strings.TrimSpace(e.Label) == "" {
			v.failf(p+".label", "empty")
		}
		v.text(p+".label", e.Label)
		v.text(p+".append", e.Append)
		if first, dup := labels[e.Label]; dup {
			v.failf(p+".label", "%q is already the label of %s", e.Label, first)
		}
		labels[e.Label] = p
		if e.Default {
			if defaults != "" {
				v.failf(p+".default", "more than one default entry (%s is default too)", defaults)
			}
			defaults = p
		}
	}
}

func (v *validator) outputs() {
	o := v.s.Outputs
	if o.ISO == "" && o.USB == nil && o.Dir == "" {
		v.failf("outputs", "no outputs: ask for at least one of iso, usb and dir")
	}
	names := map[string]string{}
	check := func(path, name string) {
		switch {
		case name == ".":
			// The build replaces an output as a whole: "." would be
			// the output directory itself, with whatever else is in it.
			v.failf(path, "%q is the output directory itself: name a file or folder inside it (the build replaces an output whole)", name)
			return
		case !filepath.IsLocal(name) || filepath.Clean(name) != name:
			v.failf(path, "%q: want a plain relative name under the output directory", name)
			return
		case strings.HasPrefix(filepath.Base(name), StagePrefix):
			v.failf(path, "%q: names starting with %s are the build's own temporary folders", name, StagePrefix)
			return
		}
		for other, first := range names {
			switch {
			case other == name:
				v.failf(path, "%q is also the name of %s", name, first)
			case strings.HasPrefix(name, other+"/") || strings.HasPrefix(other, name+"/"):
				v.failf(path, "%q and %s (%q) are one inside the other", name, first, other)
			}
		}
		names[name] = path
	}
	if o.ISO != "" {
		check("outputs.iso", o.ISO)
	}
	if u := o.USB; u != nil {
		check("outputs.usb.file", u.File)
		switch {
		case u.Size != 0 && u.Size < MinUSBSize:
			v.failf("outputs.usb.size", "%s is too small: want at least 64M", FormatSize(u.Size))
		case u.Size > MaxUSBSize:
			v.failf("outputs.usb.size", "%s is too large: want at most %s (FAT32 ends at 2 TiB, and the whole image is written to a stick; keep room for persistence with spare)",
				FormatSize(u.Size), FormatSize(MaxUSBSize))
		case u.Size%(1<<20) != 0:
			v.failf("outputs.usb.size", "%s is not a whole number of MiB: the image is laid out in 1 MiB units (write e.g. %s)",
				FormatSize(u.Size), FormatSize((u.Size+1<<20-1)>>20<<20))
		}
		if u.Size != 0 && u.Spare >= u.Size {
			v.failf("outputs.usb.spare", "%s leaves no room for the media in a %s image", FormatSize(u.Spare), FormatSize(u.Size))
		}
	}
	if o.Dir != "" {
		check("outputs.dir", o.Dir)
	}
}

// exists reports whether a path names anything.
func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// ErrSize reports a size that cannot be read.
var ErrSize = errors.New("bad size")

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}}

// ParseSize reads a byte count: a number, or one followed by K, M, G or T
// (powers of 1024; KiB, MB and the like mean the same, as in byz's flags,
// since nobody sizes a stick in powers of 1000 on purpose).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	var shift uint
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, shift = rest, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%w %q: write a number of bytes, or one with K, M, G or T (512M, 2G)", ErrSize, s)
	}
	return n << shift, nil
}

// FormatSize writes a byte count the way ParseSize reads it, in the largest
// unit that divides it.
func FormatSize(n int64) string {
	for _, u := range sizeUnits {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

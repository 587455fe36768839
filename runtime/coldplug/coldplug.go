// Package coldplug loads the drivers for the devices a machine already
// has, as udev does at boot: the kernel describes each device with a
// modalias string in sysfs, and the builder's modules.alias maps glob
// patterns of those to modules. Nobody else does it on a node (busybox
// init runs no udev or mdev): byz-init runs it for the network drivers
// before it switches root, and byzd for the rest once it serves.
package coldplug

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Result says what Run did.
type Result struct {
	// Devices is the number of distinct modaliases seen.
	Devices int
	// Loaded and Failed name the modules (dependencies included) in the
	// order they were tried; Missing the matched ones with no file.
	Loaded, Failed, Missing []string
	// NoDevice names the modules whose init found nothing to drive
	// (ENODEV, ENXIO): patterns as broad as the CPU's features match
	// drivers for hardware the machine lacks (powernow_k8 on an Intel
	// CPU), and udev too loads them and stays quiet about it.
	NoDevice []string
	// Skipped counts the matched modules Options.Only turned down.
	Skipped int
}

// Options configures Run.
type Options struct {
	// Root prefixes /sys; "" means "/".
	Root string
	// ModDir is the module directory (lib/modules/<release>) holding
	// modules.dep, modules.alias and the .ko files; see ModDir.
	ModDir string
	// Load loads one .ko; nil means finit_module(2).
	Load func(path string) error
	// Logf receives warnings; nil drops them.
	Logf func(format string, args ...any)
	// Only, when set, limits the run to the matched modules whose path
	// (relative to ModDir) it accepts; their dependencies come along.
	Only func(path string) bool
}

// rounds bounds the rescans: a loaded bus driver (a USB host controller,
// a virtio transport) makes new devices appear, which may need drivers of
// their own.
const rounds = 3

// ModDir returns root's module directory for the running kernel:
// root/lib/modules/<uname -r>.
func ModDir(root string) (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("coldplug: uname: %w", err)
	}
	return filepath.Join(root, "lib/modules", unix.ByteSliceToString(u.Release[:])), nil
}

// Network accepts the drivers a node needs to reach the network and to
// seed its random pool (its TLS key is made at first boot): network and
// wireless device drivers, and hardware random number generators.
func Network(path string) bool {
	return strings.HasPrefix(path, "kernel/drivers/net/") || strings.HasPrefix(path, "kernel/drivers/char/hw_random/")
}

// Run matches every modalias under sysfs against the module index in
// o.ModDir and loads the matches with their dependencies. It is
// best-effort: every failure is logged and the boot goes on.
func Run(o Options) Result {
	var res Result
	l, err := newLoader(o, &res)
	if err != nil {
		l.logf("warning: coldplug: %v (no drivers loaded for the machine's devices)", err)
		return res
	}
	ix, root := l.ix, l.root
	sys := filepath.Join(root, "sys")
	seen := map[string]bool{} // modaliases already matched
	for round := 0; round < rounds; round++ {
		aliases, err := readModaliases(sys)
		if err != nil {
			l.logf("warning: coldplug: %v", err)
		}
		l.progress = false
		for _, a := range aliases {
			if seen[a] {
				continue
			}
			seen[a] = true
			res.Devices++
			for _, m := range ix.match(a) {
				if l.tried[m] {
					continue
				}
				l.tried[m] = true
				if builtinOrLoaded(root, m) {
					continue
				}
				paths, ok := ix.deps[m]
				if !ok {
					res.Missing = append(res.Missing, m)
					continue
				}
				if o.Only != nil && !o.Only(paths[len(paths)-1]) {
					res.Skipped++
					continue
				}
				l.loadPaths(paths, a)
			}
		}
		if !l.progress {
			break
		}
	}
	return res
}

// newLoader fills in o's defaults and reads the module index; on an
// error the loader it returns can still log.
func newLoader(o Options, res *Result) (*loader, error) {
	l := &loader{root: o.Root, modDir: o.ModDir, load: o.Load, logf: o.Logf, res: res, tried: map[string]bool{},
		down: map[string]downKind{}}
	if l.root == "" {
		l.root = "/"
	}
	if l.logf == nil {
		l.logf = func(string, ...any) {}
	}
	if l.load == nil {
		l.load = FinitModule
	}
	var err error
	l.ix, err = loadModIndex(o.ModDir)
	return l, err
}

// loader loads matched modules with what they need, each module once.
type loader struct {
	root, modDir string
	ix           *modIndex
	load         func(path string) error
	logf         func(format string, args ...any)
	res          *Result
	tried        map[string]bool
	// down holds the modules that did not load: a module that needs
	// one cannot load either (its symbols are missing).
	down     map[string]downKind
	progress bool
}

type downKind int

const (
	noDevice downKind = iota + 1 // ENODEV, ENXIO: not for this machine
	failed
)

// loadPaths loads a module's dependencies and then the module (paths, as
// modules.dep orders them), each between its softdeps, as modprobe does:
// the kernel asks modprobe for them at run time (r8169 for its PHY
// driver, realtek), and busybox init has no modprobe that would. a is the
// modalias that matched, for the log.
func (l *loader) loadPaths(paths []string, a string) {
	var dep string // a dependency that did not load
	for i, p := range paths {
		name := koName(p)
		if i < len(paths)-1 && (l.tried[name] || builtinOrLoaded(l.root, name)) {
			if l.down[name] != 0 && dep == "" {
				dep = name
			}
			continue // a dependency already in, or tried
		}
		l.tried[name] = true
		if dep != "" {
			// What it needs is not there: loading it would fail with
			// "Unknown symbol" (edac_mce_amd declines on a CPU it does
			// not know, and amd64_edac needs it).
			if l.down[name] = l.down[dep]; l.down[dep] == noDevice {
				l.res.NoDevice = append(l.res.NoDevice, name)
			} else {
				l.logf("warning: coldplug: module %s (for %s): it needs %s, which did not load", name, a, dep)
				l.res.Failed = append(l.res.Failed, name)
			}
			continue
		}
		l.softdeps(l.ix.softPre[name], a)
		err := l.load(filepath.Join(l.modDir, p))
		switch {
		case errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO):
			l.res.NoDevice = append(l.res.NoDevice, name)
			l.down[name], dep = noDevice, name
			continue
		case err != nil && !errors.Is(err, unix.EEXIST):
			l.logf("warning: coldplug: module %s (for %s): %v", name, a, err)
			l.res.Failed = append(l.res.Failed, name)
			l.down[name], dep = failed, name
			continue
		}
		l.res.Loaded = append(l.res.Loaded, name)
		l.progress = true
		l.softdeps(l.ix.softPost[name], a)
	}
}

// softdeps loads what softdep names name: a module, or every module an
// alias names ("platform:idma64"), with what those need. A name that
// resolves to nothing is skipped: a soft dependency is not a failure.
func (l *loader) softdeps(names []string, a string) {
	for _, s := range names {
		mods := []string{canonicalModule(s)}
		if _, ok := l.ix.deps[mods[0]]; !ok {
			mods = l.ix.match(s)
		}
		for _, m := range mods {
			paths, ok := l.ix.deps[m]
			if !ok || l.tried[m] || builtinOrLoaded(l.root, m) {
				continue
			}
			l.tried[m] = true
			l.loadPaths(paths, a)
		}
	}
}

// FinitModule loads a .ko with finit_module(2), so the kernel reads the
// file itself (and can check its signature against the file).
func FinitModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// builtinOrLoaded reports whether the kernel has the module already:
// /sys/module/<name> exists for every loaded module and for built-in ones
// with parameters or a version.
func builtinOrLoaded(root, name string) bool {
	_, err := os.Stat(filepath.Join(root, "sys/module", name))
	return err == nil
}

// readModaliases returns the distinct modalias strings of the devices
// under sys/bus/*/devices, in bus then device name order (the same on
// every boot), then the CPU's. Every device with a modalias sits on a bus
// but one: the CPU features' modalias (which brings in aesni_intel, kvm,
// cpufreq drivers) is sys/devices/system/cpu/modalias. The bus folders
// hold links to just the devices: walking all of sys/devices instead
// takes five times as long under TCG.
func readModaliases(sys string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(sys, "bus", "*", "devices", "*", "modalias"))
	if err != nil {
		return nil, err
	}
	files = append(files, filepath.Join(sys, "devices/system/cpu/modalias"))
	if len(files) == 1 {
		if _, err := os.Stat(filepath.Join(sys, "bus")); err != nil {
			return nil, fmt.Errorf("reading modaliases: %w", err)
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range files {
		// A device can vanish meanwhile, and some refuse to be read:
		// neither stops the scan.
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		a := strings.TrimSpace(string(b))
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// modIndex is the part of a kernel's module index coldplug needs.
type modIndex struct {
	// deps maps a module name to the paths to load, relative to the
	// module directory: its dependencies first, itself last.
	deps map[string][]string
	// buckets holds the alias patterns by the first aliasKeyLen
	// characters of their literal prefix; short holds the patterns whose
	// literal prefix is shorter. The generic kernel has about 30,000
	// patterns and a machine a few hundred modaliases: without the
	// buckets, matching takes seconds under TCG.
	buckets map[string][]alias
	short   []alias
	// softPre and softPost hold the softdeps of modules.softdep by
	// module name: modules or aliases to load before and after it.
	softPre, softPost map[string][]string
}

type alias struct{ pattern, module string }

const aliasKeyLen = 3

// loadModIndex reads modules.dep, modules.alias and (if there is one)
// modules.softdep from dir.
func loadModIndex(dir string) (*modIndex, error) {
	ix := &modIndex{deps: map[string][]string{}, buckets: map[string][]alias{},
		softPre: map[string][]string{}, softPost: map[string][]string{}}
	err := eachFileLine(filepath.Join(dir, "modules.dep"), func(line string) {
		// "kernel/a/b.ko: kernel/c.ko kernel/d.ko": dependencies nearest
		// first, so they load from the end of the list.
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return
		}
		f := strings.Fields(rest)
		paths := make([]string, 0, len(f)+1)
		for i := len(f) - 1; i >= 0; i-- {
			paths = append(paths, f[i])
		}
		mod = strings.TrimSpace(mod)
		ix.deps[koName(mod)] = append(paths, mod)
	})
	if err != nil {
		return nil, err
	}
	err = eachFileLine(filepath.Join(dir, "modules.alias"), func(line string) {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return
		}
		a := alias{pattern: f[1], module: canonicalModule(f[2])}
		if p := literalPrefix(a.pattern); len(p) >= aliasKeyLen {
			ix.buckets[p[:aliasKeyLen]] = append(ix.buckets[p[:aliasKeyLen]], a)
		} else {
			ix.short = append(ix.short, a)
		}
	})
	if err != nil {
		return nil, err
	}
	// "softdep ext4 pre: crypto-crc32c"; the builder writes it from each
	// module's .modinfo (older module trees have none).
	err = eachFileLine(filepath.Join(dir, "modules.softdep"), func(line string) {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "softdep" {
			return
		}
		name := canonicalModule(f[1])
		var cur map[string][]string
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				cur = ix.softPre
			case "post:":
				cur = ix.softPost
			default:
				if cur != nil {
					cur[name] = append(cur[name], w)
				}
			}
		}
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return ix, nil
}

// match returns the modules whose patterns match the modalias, sorted
// and without duplicates.
func (ix *modIndex) match(modalias string) []string {
	var cands []alias
	if len(modalias) >= aliasKeyLen {
		cands = ix.buckets[modalias[:aliasKeyLen]]
	}
	set := map[string]bool{}
	for _, l := range [][]alias{cands, ix.short} {
		for _, a := range l {
			if !set[a.module] && fnmatch(a.pattern, modalias) {
				set[a.module] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

func eachFileLine(path string, fn func(line string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && line[0] != '#' {
			fn(line)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// koName is the kernel's name for a module file:
// "kernel/drivers/usb/storage/usb-storage.ko" is usb_storage.
func koName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return canonicalModule(base)
}

// canonicalModule spells a module name as /sys/module does ('-' → '_').
func canonicalModule(s string) string { return strings.ReplaceAll(s, "-", "_") }

// literalPrefix is the part of a glob before its first special character.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// fnmatch reports whether s matches the shell glob pattern with
// fnmatch(3)'s semantics and no flags, as kmod matches modules.alias:
// '*' matches any run of characters ('/' included), '?' any one, and
// '[...]' a set (ranges, '!' or '^' to negate, ']' first is literal);
// '\' quotes the next character.
func fnmatch(pattern, s string) bool {
	// Iterative with one backtrack point: on a mismatch, let the last '*'
	// swallow one more character and try again. That is enough for
	// globs, which have no other alternation.
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starP, starS = px, sx
				px++
				continue
			case '?':
				px++
				sx++
				continue
			case '[':
				if ok, n, valid := matchClass(pattern[px:], s[sx]); valid {
					if ok {
						px += n
						sx++
						continue
					}
				} else if s[sx] == '[' { // an unclosed '[' is literal
					px++
					sx++
					continue
				}
			case '\\':
				if px+1 < len(pattern) {
					if pattern[px+1] == s[sx] {
						px += 2
						sx++
						continue
					}
				} else if s[sx] == '\\' {
					px++
					sx++
					continue
				}
			default:
				if c == s[sx] {
					px++
					sx++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		px, sx = starP+1, starS
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

// matchClass matches c against the bracket expression at the start of p
// ("[a-z]..."). It returns whether c is in the set, the length of the
// expression, and whether the expression is well formed (closed).
func matchClass(p string, c byte) (ok bool, n int, valid bool) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(p) && (p[i] != ']' || first) {
		first = false
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			if hi == '\\' && i+3 < len(p) {
				i++
				hi = p[i+2]
			}
			i += 2
		}
		if lo <= c && c <= hi {
			ok = true
		}
		i++
	}
	if i >= len(p) {
		return false, 0, false
	}
	return ok != negate, i + 1, true
}

// Load loads the named modules (names or aliases, "batman-adv",
// "nft_masq") with their dependencies and softdeps, as modprobe would,
// for a feature byzd turns on (the mesh's NAT, batman-adv) rather than
// for a device. A module already in the kernel is skipped; one that is
// not in o.ModDir is reported in Missing.
func Load(o Options, names ...string) Result {
	var res Result
	l, err := newLoader(o, &res)
	if err != nil {
		l.logf("warning: coldplug: %v", err)
		res.Missing = append(res.Missing, names...)
		return res
	}
	ix, root := l.ix, l.root
	for _, n := range names {
		mods := []string{canonicalModule(n)}
		if _, ok := ix.deps[mods[0]]; !ok {
			mods = ix.match(n)
		}
		if len(mods) == 0 && !builtinOrLoaded(root, canonicalModule(n)) {
			res.Missing = append(res.Missing, n)
		}
		for _, m := range mods {
			if l.tried[m] || builtinOrLoaded(root, m) {
				continue
			}
			l.tried[m] = true
			l.loadPaths(ix.deps[m], n)
		}
	}
	return res
}

package initsys

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Coldplug loads the drivers for the devices the machine already has, as
// udev does at boot: the kernel describes each device with a modalias
// string in sysfs, and the builder's modules.alias maps glob patterns
// of those to modules. Nobody else does it here (busybox init runs no
// udev or mdev), so without it the root would come up without, say,
// virtio_net: the initramfs only carries what reaches the media.

// ColdplugResult says what Coldplug did.
type ColdplugResult struct {
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
}

// coldplugRounds bounds the rescans: a loaded bus driver (a USB host
// controller, a virtio transport) makes new devices appear, which may
// need drivers of their own.
const coldplugRounds = 3

// Coldplug matches every modalias under sysfs against the module index
// of newRoot (its /lib/modules/<release>/modules.alias and modules.dep)
// and loads the matches with their dependencies from newRoot. It is
// best-effort: every failure is logged and the boot goes on.
func Coldplug(cfg Config, newRoot string) ColdplugResult {
	cfg = cfg.withDefaults()
	root := rootDir(cfg.RootDir)
	var res ColdplugResult
	release := cfg.KernelRelease
	if release == "" {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			cfg.Logf("warning: coldplug: uname: %v", err)
			return res
		}
		release = unix.ByteSliceToString(u.Release[:])
	}
	modDir := filepath.Join(newRoot, "lib/modules", release)
	ix, err := loadModIndex(modDir)
	if err != nil {
		cfg.Logf("warning: coldplug: %v (no drivers loaded for the machine's devices)", err)
		return res
	}
	sysDevices := filepath.Join(root, "sys/devices")
	seen := map[string]bool{}  // modaliases already matched
	tried := map[string]bool{} // modules already tried
	for round := 0; round < coldplugRounds; round++ {
		aliases, err := readModaliases(sysDevices)
		if err != nil {
			cfg.Logf("warning: coldplug: %v", err)
		}
		progress := false
		for _, a := range aliases {
			if seen[a] {
				continue
			}
			seen[a] = true
			res.Devices++
			for _, m := range ix.match(a) {
				if tried[m] {
					continue
				}
				tried[m] = true
				if builtinOrLoaded(root, m) {
					continue
				}
				paths, ok := ix.deps[m]
				if !ok {
					res.Missing = append(res.Missing, m)
					continue
				}
				for i, p := range paths {
					name := koName(p)
					if i < len(paths)-1 && (tried[name] || builtinOrLoaded(root, name)) {
						continue // a dependency already in
					}
					tried[name] = true
					err := cfg.LoadModule(filepath.Join(modDir, p))
					if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
						res.NoDevice = append(res.NoDevice, name)
						continue
					}
					if err != nil && !errors.Is(err, unix.EEXIST) {
						cfg.Logf("warning: coldplug: module %s (for %s): %v", name, a, err)
						res.Failed = append(res.Failed, name)
						continue
					}
					res.Loaded = append(res.Loaded, name)
					progress = true
				}
			}
		}
		if !progress {
			break
		}
	}
	return res
}

// builtinOrLoaded reports whether the kernel has the module already:
// /sys/module/<name> exists for every loaded module and for built-in ones
// with parameters or a version.
func builtinOrLoaded(root, name string) bool {
	_, err := os.Stat(filepath.Join(root, "sys/module", name))
	return err == nil
}

// readModaliases returns the distinct modalias strings under dir, in walk
// order (sorted, so the load order is the same on every boot).
func readModaliases(dir string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A device can vanish during the walk, and some sysfs
			// entries refuse to be read: neither stops the scan.
			if d != nil && d.IsDir() && p != dir {
				return fs.SkipDir
			}
			if p == dir {
				return err
			}
			return nil
		}
		if d.Name() != "modalias" || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		a := strings.TrimSpace(string(b))
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("reading modaliases under %s: %w", dir, err)
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
}

type alias struct{ pattern, module string }

const aliasKeyLen = 3

// loadModIndex reads modules.dep and modules.alias from dir.
func loadModIndex(dir string) (*modIndex, error) {
	ix := &modIndex{deps: map[string][]string{}, buckets: map[string][]alias{}}
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

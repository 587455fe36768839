package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// ErrMissingModules reports wanted modules that are neither a .ko file of
// the kernel nor built into it. The wrapping error names them.
var ErrMissingModules = errors.New("kernel: missing kernel modules")

// Module is one loadable module of a kernel.
type Module struct {
	// Name is canonical ('_', no suffix): "nls_iso8859_1".
	Name string
	// Path is relative to the modules directory (lib/modules/<version>):
	// "kernel/fs/nls/nls_iso8859-1.ko".
	Path string
	// Depends names the modules that must be loaded before this one. From
	// .modinfo these are direct dependencies; from modules.dep, all of them.
	Depends []string
	// SoftPre and SoftPost are its soft dependencies, modules or aliases
	// (see Modinfo), from .modinfo or modules.softdep.
	SoftPre, SoftPost []string
}

// Alias maps a modalias pattern (shell glob) to a module, as a line of
// modules.alias does. The init will use these for coldplug.
type Alias struct {
	Pattern string
	Module  string
}

// Index is what depmod knows about a kernel's modules.
type Index struct {
	Modules map[string]*Module
	// Builtin holds the canonical names of modules built into the kernel
	// (modules.builtin): wanting one needs no file.
	Builtin map[string]bool
	// Aliases are sorted by pattern, then module.
	Aliases []Alias
	// BuiltinAliases are the aliases of built-in modules
	// (modules.builtin.modinfo), sorted like Aliases: a softdep on
	// "crypto-crc32c" is met without a file when crc32c is built in.
	BuiltinAliases []Alias

	// lookup indexes Aliases and BuiltinAliases for Lookup; nil until
	// first used, reset when they change.
	lookup *aliasIndex
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{Modules: map[string]*Module{}, Builtin: map[string]bool{}}
}

// LoadIndex reads modules.dep and (if present) modules.builtin,
// modules.alias, modules.softdep and modules.builtin.modinfo from dir, a
// lib/modules/<version> directory on which depmod has run or that Extract
// wrote.
func LoadIndex(dir string) (*Index, error) {
	ix := NewIndex()
	for _, f := range []struct {
		name     string
		optional bool
		parse    func(io.Reader) error
	}{
		{"modules.dep", false, ix.ParseModulesDep},
		{"modules.builtin", true, ix.ParseBuiltin},
		{"modules.alias", true, ix.ParseAliases},
		{"modules.softdep", true, ix.ParseSoftdeps},
		{"modules.builtin.modinfo", true, ix.ParseBuiltinModinfo},
	} {
		file, err := os.Open(filepath.Join(dir, f.name))
		if errors.Is(err, os.ErrNotExist) && f.optional {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kernel: loading the module index: %w", err)
		}
		err = f.parse(file)
		file.Close()
		if err != nil {
			return nil, fmt.Errorf("kernel: %s: %w", file.Name(), err)
		}
	}
	return ix, nil
}

// ParseModulesDep adds the modules of a modules.dep file:
// "kernel/fs/isofs/isofs.ko: kernel/drivers/cdrom/cdrom.ko".
func (ix *Index) ParseModulesDep(r io.Reader) error {
	return eachLine(r, func(n int, line string) error {
		path, deps, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("line %d: no ':' in %q", n, line)
		}
		m := &Module{Name: CanonicalName(path), Path: path}
		for _, d := range strings.Fields(deps) {
			m.Depends = append(m.Depends, CanonicalName(d))
		}
		ix.Modules[m.Name] = m
		return nil
	})
}

// ParseBuiltin adds the names listed in a modules.builtin file (one .ko
// path a line).
func (ix *Index) ParseBuiltin(r io.Reader) error {
	return eachLine(r, func(_ int, line string) error {
		ix.Builtin[CanonicalName(line)] = true
		return nil
	})
}

// ParseAliases adds the "alias PATTERN MODULE" lines of a modules.alias file.
func (ix *Index) ParseAliases(r io.Reader) error {
	err := eachLine(r, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return fmt.Errorf("line %d: want \"alias PATTERN MODULE\", got %q", n, line)
		}
		ix.Aliases = append(ix.Aliases, Alias{Pattern: f[1], Module: CanonicalName(f[2])})
		return nil
	})
	ix.sortAliases()
	return err
}

// ParseSoftdeps adds the "softdep MODULE pre: a b post: c" lines of a
// modules.softdep file to modules the index holds; a line for a module it
// does not hold is kept for nothing and ignored, as modprobe would.
func (ix *Index) ParseSoftdeps(r io.Reader) error {
	return eachLine(r, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			return fmt.Errorf("line %d: want \"softdep MODULE pre: ... post: ...\", got %q", n, line)
		}
		pre, post := ParseSoftdep(strings.Join(f[2:], " "))
		if m := ix.Modules[CanonicalName(f[1])]; m != nil {
			m.SoftPre = appendNew(m.SoftPre, pre...)
			m.SoftPost = appendNew(m.SoftPost, post...)
		}
		return nil
	})
}

// ParseBuiltinModinfo reads modules.builtin.modinfo, the .modinfo fields
// of the built-in modules ("ext4.alias=fs-ext4", NUL-separated), for
// their aliases; it also marks each named module built in.
func (ix *Index) ParseBuiltinModinfo(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, field := range bytes.Split(data, []byte{0}) {
		key, value, ok := strings.Cut(string(field), "=")
		if !ok {
			continue
		}
		mod, k, ok := strings.Cut(key, ".")
		if !ok || mod == "" {
			continue
		}
		ix.Builtin[CanonicalName(mod)] = true
		if k == "alias" {
			ix.BuiltinAliases = append(ix.BuiltinAliases, Alias{Pattern: value, Module: CanonicalName(mod)})
		}
	}
	ix.sortAliases()
	return nil
}

func (ix *Index) sortAliases() {
	for _, as := range [][]Alias{ix.Aliases, ix.BuiltinAliases} {
		sort.Slice(as, func(i, j int) bool {
			a, b := as[i], as[j]
			return a.Pattern < b.Pattern || a.Pattern == b.Pattern && a.Module < b.Module
		})
	}
	ix.lookup = nil
}

// appendNew appends the names not already in list.
func appendNew(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

// eachLine calls fn for every line that is neither blank nor a comment.
func eachLine(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return sc.Err()
}

// WriteModulesDep writes the index as modules.dep, sorted by path, each
// module followed by all its dependencies, nearest first — modprobe loads
// them from the end of the list.
func (ix *Index) WriteModulesDep(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, m := range ix.sortedModules() {
		// Hard dependencies only: softdeps have a file of their own.
		c := &closure{ix: ix, state: map[string]int{}, hardOnly: true}
		if err := c.visit(m, false); err != nil {
			return err
		}
		if len(c.missing) > 0 {
			return fmt.Errorf("%w: %s", ErrMissingModules, strings.Join(c.missing, ", "))
		}
		order := c.order
		fmt.Fprintf(bw, "%s:", m.Path)
		for i := len(order) - 2; i >= 0; i-- { // the last is m itself
			fmt.Fprintf(bw, " %s", order[i].Path)
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// WriteModulesSoftdep writes the modules' soft dependencies as
// modules.softdep, sorted by module.
func (ix *Index) WriteModulesSoftdep(w io.Writer) error {
	bw := bufio.NewWriter(w)
	ms := ix.sortedModules()
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	for _, m := range ms {
		if len(m.SoftPre) == 0 && len(m.SoftPost) == 0 {
			continue
		}
		fmt.Fprintf(bw, "softdep %s", m.Name)
		for _, part := range []struct {
			label string
			names []string
		}{{"pre:", m.SoftPre}, {"post:", m.SoftPost}} {
			if len(part.names) > 0 {
				fmt.Fprintf(bw, " %s %s", part.label, strings.Join(part.names, " "))
			}
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// WriteModulesAlias writes the aliases as modules.alias.
func (ix *Index) WriteModulesAlias(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, a := range ix.Aliases {
		fmt.Fprintf(bw, "alias %s %s\n", a.Pattern, a.Module)
	}
	return bw.Flush()
}

func (ix *Index) sortedModules() []*Module {
	ms := make([]*Module, 0, len(ix.Modules))
	for _, m := range ix.Modules {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Path < ms[j].Path })
	return ms
}

// Closure returns the modules to load for names, in an order that works,
// each once: a module's pre-softdeps and dependencies come before it, its
// post-softdeps after it. That is the order modprobe follows, and what the
// kernel would ask modprobe for at run time must already be loaded when
// there is no modprobe (the initramfs has none).
//
// A name may use '-' or '_' and may be an alias ("iso9660",
// "crypto-crc32c"): an alias brings every module it names, as modprobe
// loads them all (crc32c_generic and crc32c_intel; the kernel picks the
// best that loads). Built-in modules, and aliases a built-in provides, need
// no file and are left out.
//
// Names, dependencies and softdeps that resolve to nothing are reported
// together in an error wrapping ErrMissingModules; the modules that were
// found still come back, so a caller may go on with a warning. A
// dependency cycle is an error, but a cycle through a softdep is skipped,
// as modprobe skips it.
func (ix *Index) Closure(names ...string) ([]*Module, error) {
	c := &closure{ix: ix, state: map[string]int{}}
	for _, n := range names {
		if err := c.want(n, "", false); err != nil {
			return c.order, err
		}
	}
	if len(c.missing) > 0 {
		return c.order, fmt.Errorf("%w: %s (neither a .ko file of this kernel nor built in)",
			ErrMissingModules, strings.Join(c.missing, ", "))
	}
	return c.order, nil
}

type closure struct {
	ix       *Index
	hardOnly bool // follow dependencies, not softdeps
	order    []*Module
	state    map[string]int // 1: visiting, 2: done
	missing  []string
}

// want adds what name resolves to; from says who wants it, for errors.
func (c *closure) want(name, from string, soft bool) error {
	mods, builtin := c.ix.Lookup(name)
	if len(mods) == 0 {
		if !builtin {
			c.missing = append(c.missing, CanonicalName(name)+from)
		}
		return nil
	}
	for _, m := range mods {
		if err := c.visit(m, soft); err != nil {
			return err
		}
	}
	return nil
}

func (c *closure) visit(m *Module, soft bool) error {
	switch c.state[m.Name] {
	case 1:
		if soft {
			return nil
		}
		return fmt.Errorf("kernel: module dependency cycle through %s", m.Name)
	case 2:
		return nil
	}
	c.state[m.Name] = 1
	pre, post := m.SoftPre, m.SoftPost
	if c.hardOnly {
		pre, post = nil, nil
	}
	for _, step := range []struct {
		names []string
		from  string
		soft  bool
	}{
		{pre, " (softdep of " + m.Name + ")", true},
		{m.Depends, " (needed by " + m.Name + ")", soft},
	} {
		ns := slices.Clone(step.names)
		sort.Strings(ns)
		for _, n := range ns {
			if err := c.want(n, step.from, step.soft); err != nil {
				return err
			}
		}
	}
	c.state[m.Name] = 2
	c.order = append(c.order, m)
	post = slices.Clone(post)
	sort.Strings(post)
	for _, n := range post {
		if err := c.want(n, " (softdep of "+m.Name+")", true); err != nil {
			return err
		}
	}
	return nil
}

// Lookup resolves a name the way modprobe does: a module's own name
// ('-' and '_' alike), else every module with a matching alias (glob
// patterns match as fnmatch would), sorted by name. builtin reports that
// the name, or an alias matching it, is built into the kernel; a name
// that is both built in and provided by modules (crypto-aes: aes_generic
// built in, aesni_intel a module) returns the modules too. The first call
// indexes the aliases (so an Index is not for concurrent use); change them
// through the Parse methods, which drop that index.
func (ix *Index) Lookup(name string) (mods []*Module, builtin bool) {
	canon := CanonicalName(name)
	if m := ix.Modules[canon]; m != nil {
		return []*Module{m}, false
	}
	if ix.Builtin[canon] {
		return nil, true
	}
	if ix.lookup == nil {
		ix.lookup = newAliasIndex(ix.Aliases, ix.BuiltinAliases)
	}
	for _, n := range ix.lookup.modules.match(name) {
		if m := ix.Modules[n]; m != nil {
			mods = append(mods, m)
		}
	}
	return mods, len(ix.lookup.builtin.match(name)) > 0
}

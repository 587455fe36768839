package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{Modules: map[string]*Module{}, Builtin: map[string]bool{}}
}

// LoadIndex reads modules.dep, modules.builtin and (if present)
// modules.alias from dir, a lib/modules/<version> directory on which depmod
// has run or that Extract wrote.
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

func (ix *Index) sortAliases() {
	sort.Slice(ix.Aliases, func(i, j int) bool {
		a, b := ix.Aliases[i], ix.Aliases[j]
		return a.Pattern < b.Pattern || a.Pattern == b.Pattern && a.Module < b.Module
	})
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
		order, err := ix.Closure(m.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "%s:", m.Path)
		for i := len(order) - 2; i >= 0; i-- { // the last is m itself
			fmt.Fprintf(bw, " %s", order[i].Path)
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

// Closure returns the modules to load for names, dependencies first, each
// once. Names may use '-' or '_' and may be a non-glob alias
// ("iso9660"). Built-in names need no file and are left out. Names that
// are neither are reported together in an error wrapping
// ErrMissingModules; the modules that were found still come back, so a
// caller may go on with a warning.
func (ix *Index) Closure(names ...string) ([]*Module, error) {
	var (
		order   []*Module
		state   = map[string]int{} // 1: visiting, 2: done
		missing []string
	)
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("kernel: module dependency cycle through %s", name)
		case 2:
			return nil
		}
		m := ix.Modules[name]
		if m == nil {
			state[name] = 2
			if !ix.Builtin[name] {
				missing = append(missing, name+from)
			}
			return nil
		}
		state[name] = 1
		deps := append([]string(nil), m.Depends...)
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d, " (needed by "+name+")"); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, m)
		return nil
	}
	for _, n := range names {
		if err := visit(ix.resolve(CanonicalName(n)), ""); err != nil {
			return order, err
		}
	}
	if len(missing) > 0 {
		return order, fmt.Errorf("%w: %s (neither a .ko file of this kernel nor built in)",
			ErrMissingModules, strings.Join(missing, ", "))
	}
	return order, nil
}

// resolve maps an exact (non-glob) alias to its module, as modprobe
// does for "modprobe iso9660"; other names come back unchanged.
func (ix *Index) resolve(name string) string {
	if ix.Modules[name] != nil || ix.Builtin[name] {
		return name
	}
	for _, a := range ix.Aliases {
		if CanonicalName(a.Pattern) == name {
			return a.Module
		}
	}
	return name
}

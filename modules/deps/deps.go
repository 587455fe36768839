// Package deps resolves dependencies between modules: in what order a set of
// modules stacks (dependencies below their dependents), and why a set cannot
// stack at all (a dependency missing, a cycle, a conflict).
package deps

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"byzantium/modules/manifest"
)

// Errors callers branch on; the wrapped messages name the modules.
var (
	ErrMissing   = errors.New("missing dependency")
	ErrCycle     = errors.New("dependency cycle")
	ErrConflict  = errors.New("conflicting modules")
	ErrDuplicate = errors.New("duplicate module")
)

// Graph is a set of modules indexed by name and by what they provide.
type Graph struct {
	mods     map[string]*manifest.Manifest
	provider map[string][]string // provided name → module names
}

// New indexes a set of manifests. Two modules with the same name are an
// error.
func New(ms []*manifest.Manifest) (*Graph, error) {
	g := &Graph{mods: map[string]*manifest.Manifest{}, provider: map[string][]string{}}
	for _, m := range ms {
		if _, dup := g.mods[m.Name]; dup {
			return nil, fmt.Errorf("%w: %s appears twice", ErrDuplicate, m.Name)
		}
		g.mods[m.Name] = m
	}
	for _, name := range g.names() {
		for _, p := range g.mods[name].Provides {
			g.provider[p] = append(g.provider[p], name)
		}
	}
	return g, nil
}

func (g *Graph) names() []string {
	ns := make([]string, 0, len(g.mods))
	for n := range g.mods {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// lookup finds the module that satisfies dep: a module of that name first,
// else the first (by name) module providing it.
func (g *Graph) lookup(dep string) (string, bool) {
	if _, ok := g.mods[dep]; ok {
		return dep, true
	}
	if ps := g.provider[dep]; len(ps) > 0 {
		return ps[0], true
	}
	return "", false
}

// Provider returns the module that satisfies dep, as Order resolves it:
// the module of that name, else the first (by name) that provides it.
func (g *Graph) Provider(dep string) (string, bool) { return g.lookup(dep) }

// Order returns every module of the graph in stacking order: each module
// after everything it depends on, ties broken by name so the order is a pure
// function of the set. It fails on a missing dependency, a cycle or a
// conflict, naming the modules involved.
func (g *Graph) Order() ([]string, error) {
	return g.order(g.names())
}

// Closure returns the modules needed to stack want (want and everything it
// depends on, transitively) in stacking order.
func (g *Graph) Closure(want ...string) ([]string, error) {
	need := map[string]bool{}
	var visit func(name, from string) error
	visit = func(name, from string) error {
		m, ok := g.lookup(name)
		if !ok {
			if from == "" {
				return fmt.Errorf("%w: no module %s", ErrMissing, name)
			}
			return fmt.Errorf("%w: %s needs %s, which no module provides", ErrMissing, from, name)
		}
		if need[m] {
			return nil
		}
		need[m] = true
		for _, d := range g.mods[m].Depends {
			if err := visit(d, m); err != nil {
				return err
			}
		}
		return nil
	}
	for _, w := range want {
		if err := visit(w, ""); err != nil {
			return nil, err
		}
	}
	set := make([]string, 0, len(need))
	for n := range need {
		set = append(set, n)
	}
	sort.Strings(set)
	return g.order(set)
}

// Dependents returns the modules of the graph that depend on name, directly
// or not, sorted: what must go before name can be taken away.
func (g *Graph) Dependents(name string) []string {
	var out []string
	for _, n := range g.names() {
		if n == name {
			continue
		}
		closure, err := g.Closure(n)
		if err != nil {
			continue
		}
		for _, c := range closure {
			if c == name {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// order sorts the named modules topologically (depth-first over sorted
// names), reporting the first cycle found with its full path.
func (g *Graph) order(set []string) ([]string, error) {
	in := map[string]bool{}
	for _, n := range set {
		in[n] = true
	}
	for _, n := range set {
		for _, c := range g.mods[n].Conflicts {
			if other, ok := g.lookup(c); ok && in[other] {
				return nil, fmt.Errorf("%w: %s conflicts with %s", ErrConflict, n, other)
			}
		}
	}
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var out, stack []string
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case done:
			return nil
		case active:
			i := len(stack) - 1
			for stack[i] != n {
				i--
			}
			cycle := append(append([]string{}, stack[i:]...), n)
			return fmt.Errorf("%w: %s", ErrCycle, strings.Join(cycle, " → "))
		}
		state[n] = active
		stack = append(stack, n)
		deps := append([]string{}, g.mods[n].Depends...)
		sort.Strings(deps)
		for _, d := range deps {
			m, ok := g.lookup(d)
			if !ok || !in[m] {
				return fmt.Errorf("%w: %s needs %s, which no module in the set provides", ErrMissing, n, d)
			}
			if err := visit(m); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		out = append(out, n)
		return nil
	}
	for _, n := range set {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

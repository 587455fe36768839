package kernel

import (
	"path"
	"sort"
	"strings"
)

// aliasIndex answers "which modules does this name alias" without matching
// every one of a generic kernel's tens of thousands of patterns.
type aliasIndex struct {
	modules, builtin aliasSet
}

type aliasSet struct {
	exact map[string][]string // normalized pattern without glob characters → modules
	globs []glob
}

type glob struct {
	pattern, prefix, module string // prefix: the pattern's literal start
}

func newAliasIndex(mods, builtin []Alias) *aliasIndex {
	return &aliasIndex{modules: newAliasSet(mods), builtin: newAliasSet(builtin)}
}

func newAliasSet(as []Alias) aliasSet {
	s := aliasSet{exact: map[string][]string{}}
	for _, a := range as {
		p := normalizeAlias(a.Pattern)
		if i := strings.IndexAny(p, "*?["); i >= 0 {
			s.globs = append(s.globs, glob{pattern: p, prefix: p[:i], module: a.Module})
			continue
		}
		s.exact[p] = append(s.exact[p], a.Module)
	}
	return s
}

// match returns the modules whose alias matches name, sorted, each once.
func (s aliasSet) match(name string) []string {
	name = normalizeAlias(name)
	seen := map[string]bool{}
	for _, m := range s.exact[name] {
		seen[m] = true
	}
	for _, g := range s.globs {
		if seen[g.module] || !strings.HasPrefix(name, g.prefix) {
			continue
		}
		// path.Match differs from fnmatch(3) only for '/', which
		// module aliases do not use; a bad pattern matches nothing.
		if ok, _ := path.Match(g.pattern, name); ok {
			seen[g.module] = true
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// normalizeAlias makes '-' and '_' alike outside bracket expressions, as
// kmod does for both the aliases it indexes and the names it looks up
// ("crypto-crc32c" and "crypto_crc32c" are one alias; "[a-z]" keeps its
// range).
func normalizeAlias(s string) string {
	if !strings.Contains(s, "-") {
		return s
	}
	b := []byte(s)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}

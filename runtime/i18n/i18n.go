// Package i18n holds message catalogs (one JSON object of key → text per
// language) and picks a language for a request, so that templates carry
// keys and never words.
package i18n

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Catalogs is a set of languages' messages; the first language is the
// fallback for a key another one lacks.
type Catalogs struct {
	fallback string
	langs    []string
	msgs     map[string]map[string]string
	names    map[string]string // a language's own name ("Español")
}

// Load reads every LANG.json in dir of fsys. Each must hold the key
// "language.name" (the language's name in itself). fallback must be one
// of them.
func Load(fsys fs.FS, dir, fallback string) (*Catalogs, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	c := &Catalogs{fallback: fallback, msgs: map[string]map[string]string{}, names: map[string]string{}}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("i18n: %s: %w", f, err)
		}
		lang := strings.TrimSuffix(path.Base(f), ".json")
		if m["language.name"] == "" {
			return nil, fmt.Errorf("i18n: %s has no language.name", f)
		}
		c.msgs[lang], c.names[lang] = m, m["language.name"]
		c.langs = append(c.langs, lang)
	}
	if c.msgs[fallback] == nil {
		return nil, fmt.Errorf("i18n: no catalog for the fallback language %q in %s", fallback, dir)
	}
	sort.Strings(c.langs)
	return c, nil
}

// Languages lists the languages, sorted.
func (c *Catalogs) Languages() []string { return slices.Clone(c.langs) }

// Name is lang's name in itself.
func (c *Catalogs) Name(lang string) string { return c.names[lang] }

// Has reports whether lang has a catalog.
func (c *Catalogs) Has(lang string) bool { return c.msgs[lang] != nil }

// Keys returns lang's keys, sorted.
func (c *Catalogs) Keys(lang string) []string {
	var out []string
	for k := range c.msgs[lang] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// T returns the message key in lang (the fallback language's when lang
// lacks it), formatted with args as fmt does. A key no catalog has comes
// back as itself in brackets, visible rather than blank.
func (c *Catalogs) T(lang, key string, args ...any) string {
	m, ok := c.msgs[lang][key]
	if !ok {
		if m, ok = c.msgs[c.fallback][key]; !ok {
			return "[" + key + "]"
		}
	}
	if len(args) == 0 {
		return m
	}
	return fmt.Sprintf(m, args...)
}

// Match picks the language for an Accept-Language header: the supported
// one with the highest q ("es-AR" matches "es"), else the fallback.
func (c *Catalogs) Match(accept string) string {
	best, bestQ := c.fallback, -1.0
	for i, part := range strings.Split(accept, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		// Earlier entries win ties, as listed order is the user's.
		q -= float64(i) * 1e-6
		base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if c.msgs[base] != nil && q > 0 && q > bestQ {
			best, bestQ = base, q
		}
	}
	return best
}

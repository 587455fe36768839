package iso9660

import (
	"sort"
	"strconv"
	"strings"

	"byzantium/modules/entry"
)

// ISO 9660 identifiers are only a fallback here (Rock Ridge NM carries the
// real names), but readers without Rock Ridge still see them, so they follow
// level 2: d-characters, at most 31 characters, files as NAME.EXT;1.
const (
	maxIDLen  = 31 // name, dot and extension; directories: the name
	maxExtLen = 8
)

// dchars maps a name to d-characters (A–Z, 0–9, _), uppercasing letters and
// replacing everything else with '_'.
func dchars(s string) string {
	b := make([]byte, len(s))
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		default:
			c = '_'
		}
		b[i] = c
	}
	return string(b)
}

// isoName returns the mangled base name and extension of a child, before
// any de-duplication. Directories have no extension.
func isoName(name string, dir bool) (base, ext string) {
	if !dir {
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			base, ext = name[:i], name[i+1:]
		} else {
			base = name
		}
	} else {
		base = name
	}
	base, ext = dchars(base), dchars(ext)
	if len(ext) > maxExtLen {
		ext = ext[:maxExtLen]
	}
	if base == "" && ext == "" {
		base = "_"
	}
	return base, ext
}

// joinID builds the identifier from a base (cut to fit next to ext and a
// suffix) and extension; files get the version ";1".
func joinID(base, ext, suffix string, dir bool) string {
	room := maxIDLen - len(suffix)
	if !dir {
		room -= 1 + len(ext)
	}
	if len(base) > room {
		base = base[:room]
	}
	if dir {
		return base + suffix
	}
	return base + suffix + "." + ext + ";1"
}

// assignIDs gives every child of d a unique ISO identifier and sorts the
// children the way ECMA-119 9.3 orders directory records. Children are
// considered in byte order of their real names (byName), and a clash gets the
// smallest free numeric suffix, so the result depends only on the names.
func assignIDs(d *node, byName []*node) {
	used := make(map[string]bool, len(byName))
	kids := make([]*node, 0, len(byName))
	for _, k := range byName {
		isDir := k.Type == entry.TypeDir
		base, ext := isoName(k.Name, isDir)
		id := joinID(base, ext, "", isDir)
		for i := 1; used[id]; i++ {
			id = joinID(base, ext, "_"+strconv.Itoa(i), isDir)
		}
		used[id] = true
		k.isoID = id
		kids = append(kids, k)
	}
	sort.Slice(kids, func(i, j int) bool { return idLess(kids[i].isoID, kids[j].isoID) })
	d.sorted = kids
}

// idLess orders identifiers as ECMA-119 9.3 does: by name, then by
// extension, each padded with spaces; versions are all 1.
func idLess(a, b string) bool {
	an, ae := splitID(a)
	bn, be := splitID(b)
	if c := padCompare(an, bn); c != 0 {
		return c < 0
	}
	return padCompare(ae, be) < 0
}

func splitID(id string) (name, ext string) {
	id = strings.TrimSuffix(id, ";1")
	if i := strings.IndexByte(id, '.'); i >= 0 {
		return id[:i], id[i+1:]
	}
	return id, ""
}

func padCompare(a, b string) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		ca, cb := byte(' '), byte(' ')
		if i < len(a) {
			ca = a[i]
		}
		if i < len(b) {
			cb = b[i]
		}
		if ca != cb {
			return int(ca) - int(cb)
		}
	}
	return 0
}

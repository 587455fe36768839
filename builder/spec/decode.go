package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// decoder walks the yaml.Node tree by hand rather than letting yaml.v3
// decode into structs: only the node tree keeps every value's line and
// column, and strictness (unknown keys with suggestions, duplicates, exact
// types) needs the schema in our hands anyway. It records every error and
// carries on, so one run reports them all.
type decoder struct {
	file string
	dir  string
	errs []error
	pos  map[string]Pos

	// `iso: true` and friends name their output after the spec, whose
	// name may come later in the file: applyDefaults fills them in.
	isoDefault, dirDefault bool
}

// field is one key of a mapping in the schema.
type field struct {
	key      string
	required bool
	decode   func(v *yaml.Node, path string)
}

func (d *decoder) at(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) fail(n *yaml.Node, path string, err error) {
	d.errs = append(d.errs, &Error{Pos: d.at(n), Path: path, Err: err})
}

// decode parses data as exactly one YAML document holding a spec.
func (d *decoder) decode(data []byte) *Spec {
	if p, err := d.checkText(data); err != nil {
		d.errs = append(d.errs, &Error{Pos: p, Err: err})
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			d.errs = append(d.errs, &Error{Pos: Pos{File: d.file, Line: 1, Col: 1}, Err: errNoSpec})
		} else {
			d.errs = append(d.errs, d.syntaxError(err, data))
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.fail(&next, "", errors.New("a second YAML document: a spec is one document (remove the ---)"))
		return nil
	case err != io.EOF:
		d.errs = append(d.errs, d.syntaxError(err, data))
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		d.fail(&doc, "", errNoSpec) // only comments, or a bare ---
		return nil
	}
	s := &Spec{}
	d.object(deref(root), "", []field{
		{"name", true, func(v *yaml.Node, p string) { s.Name, _ = d.str(v, p) }},
		{"version", false, func(v *yaml.Node, p string) { s.Version, _ = d.str(v, p) }},
		{"kernel", true, func(v *yaml.Node, p string) { s.Kernel = d.kernel(v, p) }},
		{"cmdline", false, func(v *yaml.Node, p string) { s.Cmdline, _ = d.str(v, p) }},
		{"base", true, func(v *yaml.Node, p string) { s.Base = d.modules(v, p) }},
		{"modules", false, func(v *yaml.Node, p string) { s.Modules = d.modules(v, p) }},
		{"optional", false, func(v *yaml.Node, p string) { s.Optional = d.modules(v, p) }},
		{"rootcopy", false, func(v *yaml.Node, p string) { s.Rootcopy = d.paths(v, p) }},
		{"menu", false, func(v *yaml.Node, p string) { s.Menu = d.menu(v, p) }},
		{"console", false, func(v *yaml.Node, p string) { s.Console = d.console(v, p) }},
		{"mesh", false, func(v *yaml.Node, p string) { s.Mesh = d.mesh(v, p) }},
		{"outputs", true, func(v *yaml.Node, p string) { s.Outputs = d.outputs(v, p) }},
	})
	return s
}

// checkText finds what yaml.v3 would reject without saying where: invalid
// UTF-8 and control characters.
func (d *decoder) checkText(data []byte) (Pos, error) {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return Pos{File: d.file, Line: line, Col: col}, fmt.Errorf("invalid UTF-8 (byte %#02x): a spec is UTF-8 text", data[i])
		case r == '\n':
			line, col = line+1, 0
		case r == '\t' || r == '\r' || r == '\uFEFF':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0 && r != 0x85):
			return Pos{File: d.file, Line: line, Col: col}, fmt.Errorf("control character %U: a spec is plain text", r)
		}
		i += size
		col++
	}
	return Pos{}, nil
}

var (
	yamlLine      = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// parserProblems start the messages of yaml.v3's parser (not its
// scanner). yaml.v3 reports the parser's lines counting from 0 (and leaves
// out line 0), while the scanner's count from 1: see (*parser).fail in
// yaml.v3's decode.go. TestInvalid's syntax cases notice if that changes.
var parserProblems = []string{"did not find expected", "found undefined tag handle", "found duplicate %", "found incompatible YAML document"}

// syntaxError turns yaml.v3's "yaml: line N: msg" into a positioned error.
// yaml.v3 keeps the column to itself, so these carry a line only; for a
// parser error it is the line where the unfinished construct (a flow
// mapping, a block sequence) began.
func (d *decoder) syntaxError(err error, data []byte) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Pos{File: d.file}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	for _, prefix := range parserProblems {
		if strings.HasPrefix(msg, prefix) {
			p.Line++
		}
	}
	// An alias to an undefined anchor comes with no position at all;
	// its first use is where to look.
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			before := data[:i]
			p.Line = bytes.Count(before, []byte("\n")) + 1
			p.Col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
		}
	}
	return &Error{Pos: p, Err: fmt.Errorf("YAML syntax: %s", msg)}
}

// deref follows aliases to the anchored node. The schema is not recursive,
// so a walk over aliased nodes stays bounded even for a self-referencing
// anchor: it ends in a type error.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// describe names the type of a node for "want X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch t := n.ShortTag(); t {
		case "!!str":
			return "a string"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		case "!!timestamp":
			return "a timestamp"
		case "!!binary":
			return "binary data"
		default:
			return "a value tagged " + t
		}
	}
	return "an alias"
}

func (d *decoder) wrongType(n *yaml.Node, path, want string) {
	msg := fmt.Sprintf("want %s, got %s", want, describe(n))
	if t := n.ShortTag(); want == "a string" && n.Kind == yaml.ScalarNode &&
		(t == "!!int" || t == "!!float" || t == "!!bool" || t == "!!timestamp") {
		// `version: 1.10` is a number to YAML, and "1.1" once decoded:
		// quoting is the fix, so say so.
		msg += fmt.Sprintf(" (quote it: %q)", n.Value)
	}
	d.fail(n, path, errors.New(msg))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func where(path string) string {
	if path == "" {
		return "at top level"
	}
	return "in " + path
}

// object decodes a mapping against fields.
func (d *decoder) object(n *yaml.Node, path string, fields []field) {
	if n.Kind != yaml.MappingNode {
		d.wrongType(n, path, "a mapping")
		return
	}
	known := make([]string, len(fields))
	for i, f := range fields {
		known[i] = f.key
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, fmt.Errorf("want a key name, got %s", describe(k)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k, "", fmt.Errorf("duplicate key %q %s (first at line %d)", k.Value, where(path), first.Line))
			continue
		}
		seen[k.Value] = k
		var f *field
		for j := range fields {
			if fields[j].key == k.Value {
				f = &fields[j]
			}
		}
		if f == nil {
			d.fail(k, "", unknownKey(k.Value, where(path), known))
			continue
		}
		p := join(path, f.key)
		d.pos[p] = d.at(v)
		f.decode(v, p)
	}
	for _, f := range fields {
		if f.required && seen[f.key] == nil {
			d.fail(n, path, fmt.Errorf("missing required key %q", f.key))
		}
	}
}

// list returns the items of a sequence, aliases followed. An empty value
// is an empty list, so a commented-out list still parses.
func (d *decoder) list(n *yaml.Node, path string) []*yaml.Node {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.wrongType(n, path, "a list")
		return nil
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, it := range n.Content {
		items[i] = deref(it)
		d.pos[fmt.Sprintf("%s[%d]", path, i)] = d.at(items[i])
	}
	return items
}

func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.wrongType(n, path, "a string")
		return "", false
	}
	return n.Value, true
}

// nonEmpty is a string that must say something: a path or a name.
func (d *decoder) nonEmpty(n *yaml.Node, path string) (string, bool) {
	s, ok := d.str(n, path)
	if ok && s == "" {
		d.fail(n, path, errors.New("empty"))
		return "", false
	}
	return s, ok
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.wrongType(n, path, "true or false")
	}
	return b
}

func (d *decoder) integer(n *yaml.Node, path string) int {
	var i int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		d.wrongType(n, path, "a whole number")
	}
	return i
}

// size reads a byte count: a number, or a string such as 512M.
func (d *decoder) size(n *yaml.Node, path string) int64 {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!str") {
		v, err := ParseSize(n.Value)
		if err != nil {
			d.fail(n, path, err)
		}
		return v
	}
	d.wrongType(n, path, "a size such as 512M or 2G")
	return 0
}

// path reads a file system path, resolved against the spec's folder.
func (d *decoder) path(n *yaml.Node, path string) string {
	s, ok := d.nonEmpty(n, path)
	if !ok {
		return ""
	}
	return d.resolve(s)
}

func (d *decoder) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.dir, p)
}

func (d *decoder) paths(n *yaml.Node, path string) []string {
	var out []string
	for i, it := range d.list(n, path) {
		if p := d.path(it, fmt.Sprintf("%s[%d]", path, i)); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (d *decoder) names(n *yaml.Node, path string) []string {
	var out []string
	for i, it := range d.list(n, path) {
		if s, ok := d.nonEmpty(it, fmt.Sprintf("%s[%d]", path, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *decoder) kernel(n *yaml.Node, path string) Kernel {
	var k Kernel
	d.object(n, path, []field{
		{"deb", false, func(v *yaml.Node, p string) { k.Deb = d.path(v, p) }},
		{"vmlinuz", false, func(v *yaml.Node, p string) { k.Vmlinuz = d.path(v, p) }},
		{"modules", false, func(v *yaml.Node, p string) { k.Modules = d.path(v, p) }},
	})
	return k
}

func (d *decoder) modules(n *yaml.Node, path string) []Module {
	items := d.list(n, path)
	if len(items) == 0 {
		return nil
	}
	out := make([]Module, len(items))
	for i, it := range items {
		m := &out[i]
		d.object(it, fmt.Sprintf("%s[%d]", path, i), []field{
			{"name", true, func(v *yaml.Node, p string) { m.Name, _ = d.str(v, p) }},
			{"sources", true, func(v *yaml.Node, p string) { m.Sources = d.sources(v, p) }},
			{"comp", false, func(v *yaml.Node, p string) { m.Comp, _ = d.nonEmpty(v, p) }},
			{"level", false, func(v *yaml.Node, p string) { m.Level = d.integer(v, p) }},
			{"block-size", false, func(v *yaml.Node, p string) {
				// A size past int is rejected by Validate's range check
				// anyway; clamp so the conversion cannot wrap into range.
				m.BlockSize = int(min(d.size(v, p), 1<<31))
			}},
			{"depends", false, func(v *yaml.Node, p string) { m.Depends = d.names(v, p) }},
			{"exclude", false, func(v *yaml.Node, p string) { m.Exclude = d.strs(v, p) }},
			{"services", false, func(v *yaml.Node, p string) { m.Services = d.services(v, p) }},
		})
	}
	return out
}

func (d *decoder) sources(n *yaml.Node, path string) []string {
	var out []string
	for i, it := range d.list(n, path) {
		if s, ok := d.nonEmpty(it, fmt.Sprintf("%s[%d]", path, i)); ok {
			out = append(out, d.resolveSource(s))
		}
	}
	return out
}

// Source references that name files, as modules.ParseSource tells them
// apart, and its transports.
var (
	fileSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tzst", ".tar.xz", ".txz",
		".tar.bz2", ".tbz2", ".deb", ".xzm", ".sqfs", ".squashfs"}
	transports = []string{"oci:", "docker-archive:", "npm:"}
)

// resolveSource makes a source reference's path absolute and leaves a
// registry reference alone. ParseSource decides by looking at the file
// system; this decides the same way where it must, and by the spelling
// where it can, so a spec reads the same before its inputs exist.
func (d *decoder) resolveSource(ref string) string {
	for _, t := range transports {
		if rest, ok := strings.CutPrefix(ref, t); ok {
			// oci:PATH[:TAG]: the path ends at the first colon, as in
			// modules/oci.
			p, tag, hasTag := strings.Cut(rest, ":")
			if p == "" {
				return ref
			}
			p = d.resolve(p)
			if hasTag {
				p += ":" + tag
			}
			return t + p
		}
	}
	if d.isLocal(ref) {
		return d.resolve(ref)
	}
	return ref
}

func (d *decoder) isLocal(ref string) bool {
	if filepath.IsAbs(ref) || ref == "." || ref == ".." || strings.HasPrefix(ref, "./") ||
		strings.HasPrefix(ref, "../") || strings.HasSuffix(ref, "/") || !strings.ContainsAny(ref, "/:") {
		return true
	}
	lower := strings.ToLower(ref)
	for _, s := range fileSuffixes {
		if strings.HasSuffix(lower, s) {
			return true
		}
	}
	return exists(d.resolve(ref))
}

func (d *decoder) menu(n *yaml.Node, path string) []MenuEntry {
	items := d.list(n, path)
	if len(items) == 0 {
		return nil
	}
	out := make([]MenuEntry, len(items))
	for i, it := range items {
		e := &out[i]
		d.object(it, fmt.Sprintf("%s[%d]", path, i), []field{
			{"label", true, func(v *yaml.Node, p string) { e.Label, _ = d.str(v, p) }},
			{"append", false, func(v *yaml.Node, p string) { e.Append, _ = d.str(v, p) }},
			{"default", false, func(v *yaml.Node, p string) { e.Default = d.boolean(v, p) }},
		})
	}
	return out
}

func (d *decoder) outputs(n *yaml.Node, path string) Outputs {
	var o Outputs
	d.object(n, path, []field{
		{"iso", false, func(v *yaml.Node, p string) { o.ISO, d.isoDefault = d.output(v, p) }},
		{"usb", false, func(v *yaml.Node, p string) { o.USB = d.usb(v, p) }},
		{"dir", false, func(v *yaml.Node, p string) { o.Dir, d.dirDefault = d.output(v, p) }},
	})
	return o
}

// output reads `true`, `false` or a name; true asks for the default name.
func (d *decoder) output(n *yaml.Node, path string) (name string, byDefault bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		return "", d.boolean(n, path)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		name, _ = d.nonEmpty(n, path)
		return name, false
	}
	d.wrongType(n, path, "true, false or a name")
	return "", false
}

func (d *decoder) usb(n *yaml.Node, path string) *USB {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		if d.boolean(n, path) {
			return &USB{}
		}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.wrongType(n, path, "true, false or a mapping")
		return nil
	}
	u := &USB{}
	d.object(n, path, []field{
		{"file", false, func(v *yaml.Node, p string) { u.File, _ = d.nonEmpty(v, p) }},
		{"size", false, func(v *yaml.Node, p string) { u.Size = d.size(v, p) }},
		{"spare", false, func(v *yaml.Node, p string) { u.Spare = d.size(v, p) }},
	})
	return u
}

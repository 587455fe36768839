package deb

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Control is the control file of a binary package (deb-control(5)).
type Control struct {
	Package      string
	Version      string
	Architecture string
	Maintainer   string
	Source       string
	Section      string
	Priority     string
	MultiArch    string
	Essential    bool
	// InstalledSize is in KiB, as dpkg counts it.
	InstalledSize int64
	// Description is the synopsis line, then the extended description with
	// its continuation lines as written (leading space kept).
	Description string
	// Relationship fields, split at commas; alternatives ("a | b") and
	// version constraints stay in one element: "libc6 (>= 2.34)".
	Depends, PreDepends, Recommends, Suggests []string
	Provides, Conflicts, Breaks, Replaces     []string
	// Fields holds every field, relationship ones included, keyed by the
	// canonical form of its name ("Pre-Depends"): field names are
	// case-insensitive.
	Fields map[string]string
}

// Field returns the value of the named field, whatever its case.
func (c *Control) Field(name string) string {
	return c.Fields[canonicalName(name)]
}

// canonicalName is the key of a field name in Fields: each ASCII letter
// upper case at the start and after a '-', lower case elsewhere
// ("Pre-Depends"). It agrees with textproto.CanonicalMIMEHeaderKey on HTTP
// tokens, but deb-control(5) allows more characters in a name ('/', '(', '"'
// …), which that leaves as they are, case and all.
func canonicalName(name string) string {
	b := []byte(name)
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}

// ParseControl parses the first stanza of an RFC 822-style control file.
func ParseControl(r io.Reader) (*Control, error) {
	c := &Control{Fields: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	// The value of the last field grows in a Builder: appending each
	// continuation line to the string in Fields would copy the value so
	// far every time, quadratic in a long description.
	var last string
	var value strings.Builder
	flush := func() {
		if last != "" {
			c.Fields[last] = value.String()
		}
	}
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		switch {
		case strings.TrimSpace(text) == "":
			if last != "" {
				flush()
				return c, c.fill() // a blank line ends the stanza
			}
		case strings.HasPrefix(text, "#"):
			// dpkg allows comment lines in control files.
		case text[0] == ' ' || text[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("control line %d: continuation line before any field", line)
			}
			value.WriteString("\n")
			value.WriteString(text)
		default:
			name, v, ok := strings.Cut(text, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("control line %d: %q is not a field", line, text)
			}
			flush()
			last = canonicalName(name)
			if _, dup := c.Fields[last]; dup {
				return nil, fmt.Errorf("control line %d: field %s given twice", line, last)
			}
			c.Fields[last] = "" // for the check above, until flushed
			value.Reset()
			value.WriteString(strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	flush()
	return c, c.fill()
}

// fill sets the typed fields from Fields and checks the mandatory ones.
func (c *Control) fill() error {
	f := c.Field
	c.Package, c.Version, c.Architecture = f("Package"), f("Version"), f("Architecture")
	c.Maintainer, c.Source, c.Section, c.Priority = f("Maintainer"), f("Source"), f("Section"), f("Priority")
	c.MultiArch, c.Description = f("Multi-Arch"), f("Description")
	c.Essential = f("Essential") == "yes"
	for _, rel := range []struct {
		dst  *[]string
		name string
	}{
		{&c.Depends, "Depends"}, {&c.PreDepends, "Pre-Depends"}, {&c.Recommends, "Recommends"},
		{&c.Suggests, "Suggests"}, {&c.Provides, "Provides"}, {&c.Conflicts, "Conflicts"},
		{&c.Breaks, "Breaks"}, {&c.Replaces, "Replaces"},
	} {
		*rel.dst = splitRelations(f(rel.name))
	}
	if s := f("Installed-Size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("control: Installed-Size %q: %w", s, err)
		}
		c.InstalledSize = n
	}
	for _, name := range []string{"Package", "Version", "Architecture"} {
		if f(name) == "" {
			return fmt.Errorf("control: no %s field", name)
		}
	}
	return nil
}

// splitRelations splits a relationship field at commas, folding the line
// breaks and runs of spaces a long field may contain.
func splitRelations(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.Join(strings.Fields(part), " "); part != "" {
			out = append(out, part)
		}
	}
	return out
}

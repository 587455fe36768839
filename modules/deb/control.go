package deb

import (
	"bufio"
	"fmt"
	"io"
	"net/textproto"
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
	return c.Fields[textproto.CanonicalMIMEHeaderKey(name)]
}

// ParseControl parses the first stanza of an RFC 822-style control file.
func ParseControl(r io.Reader) (*Control, error) {
	c := &Control{Fields: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var last string
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		switch {
		case strings.TrimSpace(text) == "":
			if len(c.Fields) > 0 {
				return c, c.fill() // a blank line ends the stanza
			}
		case strings.HasPrefix(text, "#"):
			// dpkg allows comment lines in control files.
		case text[0] == ' ' || text[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("control line %d: continuation line before any field", line)
			}
			c.Fields[last] += "\n" + text
		default:
			name, value, ok := strings.Cut(text, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("control line %d: %q is not a field", line, text)
			}
			last = textproto.CanonicalMIMEHeaderKey(name)
			if _, dup := c.Fields[last]; dup {
				return nil, fmt.Errorf("control line %d: field %s given twice", line, last)
			}
			c.Fields[last] = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
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

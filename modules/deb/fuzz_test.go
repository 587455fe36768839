package deb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"byzantium/modules/entry"
	"byzantium/modules/tarball"
)

// FuzzOpen opens arbitrary bytes as a .deb and reads every entry and body of
// its data. Whatever the input, Open and the stream must not panic or
// allocate without bound, and every failure must be an error naming the
// .deb and wrapping a sentinel: ours, tarball.ErrBroken or entry's. The
// corpus in testdata/fuzz/FuzzOpen starts from the packages
// testdata/mkseeds.sh makes and keeps crashers found since.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Open(bytes.NewReader(b), "fuzz.deb")
		if err != nil {
			checkOpenErr(t, err)
			return
		}
		defer p.Close()
		if c := p.Control; c == nil || c.Package == "" || c.Version == "" || c.Architecture == "" {
			t.Fatalf("Open succeeded with control %+v", c)
		}
		if !slices.Contains([]tarball.Compression{tarball.None, tarball.Gzip, tarball.XZ, tarball.Zstd, tarball.Bzip2}, p.Compression) {
			t.Fatalf("Compression = %q", p.Compression)
		}
		// Cap what one input may make us read, so a small bomb does not
		// stall the fuzzer.
		budget := int64(4 << 20)
		for budget > 0 {
			h, err := p.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				checkStreamErr(t, err)
				break
			}
			n, err := io.Copy(io.Discard, io.LimitReader(p, budget))
			budget -= n
			if err != nil {
				checkStreamErr(t, err)
				break
			}
			if n > h.Size {
				t.Fatalf("%s: read %d bytes of a %d-byte body", h.Path, n, h.Size)
			}
		}
	})
}

func checkOpenErr(t *testing.T, err error) {
	t.Helper()
	if !strings.HasPrefix(err.Error(), "fuzz.deb: ") {
		t.Errorf("Open error does not name the .deb: %v", err)
	}
	checkStreamErr(t, err)
}

func checkStreamErr(t *testing.T, err error) {
	t.Helper()
	for _, sentinel := range []error{ErrNotDeb, ErrCompression, tarball.ErrBroken, entry.ErrBadHeader, entry.ErrUnsupported} {
		if errors.Is(err, sentinel) {
			return
		}
	}
	t.Fatalf("error wraps no sentinel: %v", err)
}

// FuzzParseControl parses arbitrary bytes as a control file. When that
// succeeds, the typed fields must agree with Fields, every field must be
// found by Field in any ASCII case, relationships must come out trimmed and
// split, and the fields written back out must parse to the same fields. The
// corpus in testdata/fuzz/FuzzParseControl starts from the control files
// testdata/mkseeds.sh writes.
func FuzzParseControl(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseControl(bytes.NewReader(b))
		if err != nil {
			return
		}
		checkControl(t, c)
		// Line ends in CR are dropped by the parser, so a value ending in
		// one does not survive the round trip; that is not worth a rule.
		if bytes.ContainsRune(b, '\r') {
			return
		}
		var out strings.Builder
		for _, k := range slices.Sorted(maps.Keys(c.Fields)) {
			fmt.Fprintf(&out, "%s: %s\n", k, c.Fields[k])
		}
		c2, err := ParseControl(strings.NewReader(out.String()))
		if err != nil {
			t.Fatalf("written back, the fields do not parse: %v\n%s", err, out.String())
		}
		if fmt.Sprint(c2.Fields) != fmt.Sprint(c.Fields) {
			t.Fatalf("fields changed on the round trip:\n%q\n%q", c.Fields, c2.Fields)
		}
	})
}

func checkControl(t *testing.T, c *Control) {
	t.Helper()
	if c.Package == "" || c.Version == "" || c.Architecture == "" {
		t.Fatalf("parsed without Package, Version or Architecture: %+v", c)
	}
	for name, got := range map[string]string{
		"Package": c.Package, "Version": c.Version, "Architecture": c.Architecture,
		"Maintainer": c.Maintainer, "Source": c.Source, "Section": c.Section,
		"Priority": c.Priority, "Multi-Arch": c.MultiArch, "Description": c.Description,
	} {
		if want := c.Field(name); got != want {
			t.Fatalf("%s = %q, Field(%q) = %q", name, got, name, want)
		}
	}
	if c.Essential != (c.Field("Essential") == "yes") {
		t.Fatalf("Essential = %v, field %q", c.Essential, c.Field("Essential"))
	}
	if s := c.Field("Installed-Size"); s == "" && c.InstalledSize != 0 {
		t.Fatalf("InstalledSize = %d without the field", c.InstalledSize)
	} else if n, err := strconv.ParseInt(s, 10, 64); s != "" && (err != nil || n != c.InstalledSize) {
		t.Fatalf("InstalledSize = %d, field %q", c.InstalledSize, s)
	}
	for k, v := range c.Fields {
		for _, name := range []string{k, mapCase(k, isUpper), mapCase(k, isLower), mapCase(k, always)} {
			if got := c.Field(name); got != v {
				t.Fatalf("Field(%q) = %q, want %q, the value of %q", name, got, v, k)
			}
		}
	}
	for _, rel := range [][]string{c.Depends, c.PreDepends, c.Recommends, c.Suggests, c.Provides, c.Conflicts, c.Breaks, c.Replaces} {
		for _, r := range rel {
			if r == "" || r != strings.Join(strings.Fields(r), " ") || strings.Contains(r, ",") {
				t.Fatalf("relationship %q is not trimmed and split (all: %q)", r, rel)
			}
		}
	}
}

// mapCase changes the case of the ASCII letters in s for which flip says
// so. Control field names are ASCII; strings.ToUpper would also rewrite
// other bytes, invalid UTF-8 among them.
func mapCase(s string, flip func(c byte) bool) string {
	b := []byte(s)
	for i, c := range b {
		if ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') && flip(c) {
			b[i] ^= 0x20
		}
	}
	return string(b)
}

func isUpper(c byte) bool { return c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' }
func always(byte) bool    { return true }

// TestParseControlLongValue parses a long description of short
// continuation lines, which was quadratic while each line was appended to
// the value in Fields.
func TestParseControlLongValue(t *testing.T) {
	const lines = 300_000
	in := "Package: a\nVersion: 1\nArchitecture: all\nDescription: long\n" + strings.Repeat(" x\n", lines) + "Section: misc\n"
	c, err := ParseControl(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := "long" + strings.Repeat("\n x", lines); c.Description != want || c.Section != "misc" {
		t.Errorf("Description has %d bytes, want %d; Section %q", len(c.Description), len(want), c.Section)
	}
}

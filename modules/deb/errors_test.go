package deb

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// archive builds an ar archive as dpkg-deb lays it out.
func archive(members ...[2]string) []byte {
	var b bytes.Buffer
	b.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m[0], 0, 0, 0, "100644", len(m[1]))
		b.WriteString(m[1])
		if len(m[1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func tarOf(t *testing.T, files ...[2]string) string {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f[0], Size: int64(len(f[1])), Mode: 0o644}))
		_, err := tw.Write([]byte(f[1]))
		must(t, err)
	}
	must(t, tw.Close())
	return b.String()
}

func TestOpenErrors(t *testing.T) {
	ctl := tarOf(t, [2]string{"./md5sums", "x"}, [2]string{"./control", "Package: p\nVersion: 1\nArchitecture: all\n"})
	data := tarOf(t, [2]string{"./usr/odd", "123"})
	version := [2]string{"debian-binary", "2.0\n"}
	for _, tc := range []struct {
		name   string
		deb    []byte
		target error
		says   string
	}{
		{"not ar", []byte("hello, world\n"), ErrNotDeb, "no ar archive magic"},
		{"empty", nil, ErrNotDeb, "no ar archive magic"},
		{"no debian-binary", archive([2]string{"control.tar", ctl}), ErrNotDeb, "want debian-binary"},
		{"version 3", archive([2]string{"debian-binary", "3.0\n"}), ErrNotDeb, `"3.0"`},
		{"no data", archive(version, [2]string{"control.tar", ctl}), ErrNotDeb, "no data.tar member"},
		{"lzma data", archive(version, [2]string{"control.tar", ctl}, [2]string{"data.tar.lzma", "x"}), ErrCompression, "data.tar.lzma"},
		{"odd control", archive(version, [2]string{"control.tar.lz4", "x"}), ErrCompression, "control.tar.lz4"},
		{"no control file", archive(version, [2]string{"control.tar", tarOf(t)}, [2]string{"data.tar", data}), ErrNotDeb, "no control file"},
		{"bad control", archive(version, [2]string{"control.tar", tarOf(t, [2]string{"./control", "Package p\n"})}), ErrNotDeb, "not a field"},
		{"truncated", archive(version, [2]string{"control.tar", ctl})[:100], ErrNotDeb, "control.tar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(bytes.NewReader(tc.deb), "bad.deb")
			if !errors.Is(err, tc.target) || !strings.HasPrefix(err.Error(), "bad.deb: ") || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Open = %v, want %v naming bad.deb and saying %s", err, tc.target, tc.says)
			}
		})
	}

	// Odd-sized members (padding), a "_" member and an uncompressed
	// control.tar with the control file second.
	deb := archive(version, [2]string{"_gpgbuilder", "sig"}, [2]string{"control.tar", ctl}, [2]string{"data.tar", data})
	p, err := Open(bytes.NewReader(deb), "good.deb")
	if err != nil {
		t.Fatal(err)
	}
	hs := readHeaders(t, p)
	if p.Control.Package != "p" || len(hs) != 1 || hs[0].Path != "usr/odd" || hs[0].Size != 3 {
		t.Errorf("control %+v, entries %v", p.Control, pathsOf(hs))
	}
}

func TestParseControl(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		check    func(c *Control) bool
		err      string
	}{
		{"minimal", "Package: a\nVersion: 1\nArchitecture: all\n", func(c *Control) bool { return c.Package == "a" }, ""},
		{"case and continuation", "package: a\nVERSION: 1\narchitecture: all\npre-depends: x,\n  y (>= 1)\n\nPackage: second\n",
			func(c *Control) bool {
				return fmt.Sprint(c.PreDepends) == "[x y (>= 1)]" && c.Field("Pre-Depends") == "x,\n  y (>= 1)" && c.Package == "a"
			}, ""},
		{"missing version", "Package: a\nArchitecture: all\n", nil, "no Version"},
		{"duplicate", "Package: a\nPackage: b\n", nil, "given twice"},
		{"continuation first", " x\n", nil, "continuation"},
		{"not a field", "Package a\n", nil, "not a field"},
		{"bad size", "Package: a\nVersion: 1\nArchitecture: all\nInstalled-Size: big\n", nil, "Installed-Size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseControl(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("ParseControl = %v, want an error saying %q", err, tc.err)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Errorf("ParseControl = %+v, %v", c, err)
			}
		})
	}
}

package entry

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"": ".", ".": ".", "./": ".", "/": ".", "./usr/bin/": "usr/bin", "/etc//motd": "etc/motd",
		"a/./b/../c": "a/c", "../../etc/passwd": "etc/passwd", "usr/../..": ".",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		ok   bool
	}{
		{"file", Header{Path: "a", Type: TypeRegular, Mode: 0o644, Size: 3}, true},
		{"setuid dir", Header{Path: "d", Type: TypeDir, Mode: 0o7777}, true},
		{"root dir", Header{Path: ".", Type: TypeDir}, true},
		{"root file", Header{Path: ".", Type: TypeRegular}, false},
		{"unclean", Header{Path: "a/../b", Type: TypeRegular}, false},
		{"absolute", Header{Path: "/a", Type: TypeRegular}, false},
		{"no type", Header{Path: "a"}, false},
		{"type bits in mode", Header{Path: "a", Type: TypeRegular, Mode: 0o100644}, false},
		{"size on dir", Header{Path: "d", Type: TypeDir, Size: 1}, false},
		{"negative size", Header{Path: "a", Type: TypeRegular, Size: -1}, false},
		{"empty symlink", Header{Path: "l", Type: TypeSymlink}, false},
		{"dangling symlink", Header{Path: "l", Type: TypeSymlink, Linkname: "/nowhere"}, true},
		{"hardlink unclean", Header{Path: "h", Type: TypeHardlink, Linkname: "/a"}, false},
		{"hardlink to root", Header{Path: "h", Type: TypeHardlink, Linkname: "."}, false},
	}
	for _, tt := range tests {
		err := tt.h.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: error %v does not wrap ErrBadHeader", tt.name, err)
		}
	}
}

func TestFileMode(t *testing.T) {
	for _, tt := range []struct {
		h    Header
		want string
	}{
		{Header{Type: TypeRegular, Mode: 0o4755}, "urwxr-xr-x"},
		{Header{Type: TypeDir, Mode: 0o1777}, "dtrwxrwxrwx"},
		{Header{Type: TypeCharDev, Mode: 0o600}, "Dcrw-------"},
		{Header{Type: TypeSymlink, Mode: 0o777}, "Lrwxrwxrwx"},
	} {
		if got := tt.h.FileMode().String(); got != tt.want {
			t.Errorf("FileMode(%v %o) = %s, want %s", tt.h.Type, tt.h.Mode, got, tt.want)
		}
	}
}

func TestModeString(t *testing.T) {
	for _, tt := range []struct {
		h    Header
		want string
	}{
		{Header{Type: TypeRegular, Mode: 0o644}, "-rw-r--r--"},
		{Header{Type: TypeRegular, Mode: 0o4755}, "-rwsr-xr-x"},
		{Header{Type: TypeRegular, Mode: 0o6644}, "-rwSr-Sr--"},
		{Header{Type: TypeDir, Mode: 0o1777}, "drwxrwxrwt"},
		{Header{Type: TypeDir, Mode: 0o1770}, "drwxrwx--T"},
		{Header{Type: TypeHardlink, Mode: 0o600}, "-rw-------"},
		{Header{Type: TypeBlockDev, Mode: 0o660}, "brw-rw----"},
		{Header{Type: TypeSocket, Mode: 0o777}, "srwxrwxrwx"},
	} {
		if got := tt.h.ModeString(); got != tt.want {
			t.Errorf("ModeString(%v %o) = %s, want %s", tt.h.Type, tt.h.Mode, got, tt.want)
		}
	}
}

// collect records what Copy hands a writer.
type collect struct {
	paths  []string
	bodies map[string]string
	cur    string
}

func (c *collect) WriteHeader(h *Header) error {
	c.paths = append(c.paths, h.Path)
	c.cur = h.Path
	return nil
}
func (c *collect) Write(p []byte) (int, error) { c.bodies[c.cur] += string(p); return len(p), nil }
func (c *collect) Close() error                { return nil }

func slice(bodies map[string]string, hs ...*Header) *Slice {
	s := &Slice{Headers: hs, Bodies: map[string][]byte{}}
	for k, v := range bodies {
		s.Bodies[k] = []byte(v)
	}
	return s
}

func TestConcatCopy(t *testing.T) {
	a := slice(map[string]string{"f": "one"}, &Header{Path: "f", Type: TypeRegular, Size: 3})
	b := slice(map[string]string{"f": "two!"}, &Header{Path: "d", Type: TypeDir}, &Header{Path: "f", Type: TypeRegular, Size: 4})
	c := &collect{bodies: map[string]string{}}
	n, err := Copy(c, Concat(a, slice(nil), b))
	if err != nil || n != 3 {
		t.Fatalf("Copy = %d, %v", n, err)
	}
	if got := c.bodies["f"]; got != "onetwo!" {
		t.Errorf("bodies = %q, want both in order", got)
	}
	short := slice(map[string]string{"f": "ab"}, &Header{Path: "f", Type: TypeRegular, Size: 5})
	if _, err := Copy(&collect{bodies: map[string]string{}}, short); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body: %v, want ErrUnexpectedEOF", err)
	}
}

func TestClampModTime(t *testing.T) {
	ep := time.Unix(1000, 0)
	old, young := &Header{Path: "o", Type: TypeDir, ModTime: time.Unix(10, 0)}, &Header{Path: "y", Type: TypeDir, ModTime: time.Unix(5000, 0)}
	r := ClampModTime(slice(nil, old, young), ep)
	h1, _ := r.Next()
	h2, _ := r.Next()
	if !h1.ModTime.Equal(time.Unix(10, 0)) || !h2.ModTime.Equal(ep) {
		t.Errorf("clamped to %v, %v", h1.ModTime, h2.ModTime)
	}
	if !young.ModTime.Equal(time.Unix(5000, 0)) {
		t.Error("ClampModTime changed the caller's header")
	}
}

func TestHashAndCount(t *testing.T) {
	digest := func(mode uint32, body string) []byte {
		h := sha256.New()
		var c Counter
		r := Count(Hash(slice(map[string]string{"f": body}, &Header{Path: "f", Type: TypeRegular, Mode: mode, Size: int64(len(body))}), h), &c)
		if _, err := Copy(&collect{bodies: map[string]string{}}, r); err != nil {
			t.Fatal(err)
		}
		if c.Entries.Load() != 1 || c.Bytes.Load() != int64(len(body)) {
			t.Errorf("counted %d entries, %d bytes", c.Entries.Load(), c.Bytes.Load())
		}
		return h.Sum(nil)
	}
	base := digest(0o644, "abc")
	if !bytes.Equal(base, digest(0o644, "abc")) {
		t.Error("same stream, different digests")
	}
	if bytes.Equal(base, digest(0o600, "abc")) || bytes.Equal(base, digest(0o644, "abd")) {
		t.Error("a changed mode or body left the digest unchanged")
	}
}

func TestPrefix(t *testing.T) {
	in := slice(nil, &Header{Path: ".", Type: TypeDir}, &Header{Path: "kernel/a.ko", Type: TypeRegular},
		&Header{Path: "b.ko", Type: TypeHardlink, Linkname: "kernel/a.ko"})
	r := Prefix(in, "lib/modules/6.1.0")
	want := []struct{ path, link string }{{"lib/modules/6.1.0", ""}, {"lib/modules/6.1.0/kernel/a.ko", ""},
		{"lib/modules/6.1.0/b.ko", "lib/modules/6.1.0/kernel/a.ko"}}
	for _, w := range want {
		h, err := r.Next()
		if err != nil || h.Path != w.path || h.Linkname != w.link {
			t.Fatalf("Next = %+v, %v; want %s %s", h, err, w.path, w.link)
		}
	}
	if in.Headers[1].Path != "kernel/a.ko" {
		t.Error("Prefix changed the caller's header")
	}
}

func TestExclude(t *testing.T) {
	hs := []*Header{
		{Path: ".", Type: TypeDir},
		{Path: "etc", Type: TypeDir},
		{Path: "etc/ssh", Type: TypeDir},
		{Path: "etc/ssh/ssh_host_ed25519_key", Type: TypeRegular, Size: 3},
		{Path: "etc/ssh/sshd_config", Type: TypeRegular, Size: 1},
		{Path: "root", Type: TypeDir},
		{Path: "root/keycopy", Type: TypeHardlink, Linkname: "etc/ssh/ssh_host_ed25519_key"},
		{Path: "var/lib/byzantium/tls", Type: TypeDir},
		{Path: "var/lib/byzantium/tls/key.pem", Type: TypeRegular, Size: 3},
		{Path: "var/lib/byzantium/tls-notes", Type: TypeRegular, Size: 1},
		{Path: "var/lib/byzantium/node-id", Type: TypeRegular, Size: 3},
	}
	s := &Slice{Headers: hs, Bodies: map[string][]byte{"etc/ssh/sshd_config": []byte("c"), "var/lib/byzantium/tls-notes": []byte("n")}}
	r := Exclude(s, []string{"etc/ssh/ssh_host_*", "var/lib/byzantium/tls", "var/lib/byzantium/node-id", "["})
	var got []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Path)
	}
	want := []string{".", "etc", "etc/ssh", "etc/ssh/sshd_config", "root", "var/lib/byzantium/tls-notes"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Exclude kept %q, want %q", got, want)
	}
}

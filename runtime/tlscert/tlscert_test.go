package tlscert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	opts := Options{
		Dir:   filepath.Join(dir, "tls"),
		Names: []string{"node1", "node1.local", "localhost"},
		IPs:   []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	first, err := LoadOrCreate(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created {
		t.Error("first call: Created = false, want true")
	}
	key, ok := first.TLS.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", first.TLS.PrivateKey)
	}
	for _, h := range []string{"node1", "node1.local", "localhost", "127.0.0.1", "::1"} {
		if err := first.Leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate does not cover %s: %v", h, err)
		}
	}
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(first.Fingerprint) {
		t.Errorf("Fingerprint = %q, want 32 upper-case hex pairs", first.Fingerprint)
	}
	for name, want := range map[string]os.FileMode{KeyFile: 0o600, CertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(opts.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", name, fi.Mode().Perm(), want)
		}
	}

	again, err := LoadOrCreate(opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.Fingerprint != first.Fingerprint {
		t.Errorf("second call: Created=%v fingerprint %s, want reuse of %s", again.Created, again.Fingerprint, first.Fingerprint)
	}
}

// TestReplaceUnusable covers every way a stored pair can be damaged: each
// is replaced with a warning and the old files kept as *.bad.
func TestReplaceUnusable(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		names  []string
	}{
		{"corrupt key", func(t *testing.T, dir string) { write(t, dir, KeyFile, "-----BEGIN PRIVATE KEY-----\ngarbage\n") }, nil},
		{"empty cert", func(t *testing.T, dir string) { write(t, dir, CertFile, "") }, nil},
		{"key missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, KeyFile)) }, nil},
		{"key of another certificate", func(t *testing.T, dir string) {
			other, err := create(Options{Names: []string{"x"}})
			if err != nil {
				t.Fatal(err)
			}
			otherDir := t.TempDir()
			if err := store(otherDir, other); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(otherDir, KeyFile))
			write(t, dir, KeyFile, string(b))
		}, nil},
		{"node renamed", func(*testing.T, string) {}, []string{"renamed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			old, err := LoadOrCreate(Options{Dir: dir, Names: []string{"node1"}})
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir)
			var logs bytes.Buffer
			names := tt.names
			if names == nil {
				names = []string{"node1"}
			}
			c, err := LoadOrCreate(Options{Dir: dir, Names: names, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("LoadOrCreate after damage: %v", err)
			}
			if !c.Created || c.Fingerprint == old.Fingerprint {
				t.Errorf("Created=%v, same fingerprint=%v; want a new certificate", c.Created, c.Fingerprint == old.Fingerprint)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "unusable") {
				t.Errorf("no warning logged; got:\n%s", logs.String())
			}
			if _, err := os.Stat(filepath.Join(dir, CertFile+".bad")); err != nil {
				t.Errorf("old certificate not kept aside: %v", err)
			}
			reused, err := LoadOrCreate(Options{Dir: dir, Names: names})
			if err != nil || reused.Fingerprint != c.Fingerprint {
				t.Errorf("replacement not reused: %v", err)
			}
		})
	}
}

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFingerprint(t *testing.T) {
	// sha256("") is e3b0c442…b855, a value anyone can check.
	got := Fingerprint(nil)
	want := "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
	if got != want {
		t.Errorf("Fingerprint(nil) = %s, want %s", got, want)
	}
}

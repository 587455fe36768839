package tlscert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
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
			other, err := create(Options{Names: []string{"x"}}, nil)
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

// TestLeafSignsNothing: the node's certificate verifies as its own pin, and
// a certificate for another site signed with the node's key does not,
// whether it names the node's certificate as its issuer or not. When the
// node's certificate was a CA (before this package made leaves), the child
// verified: that is the attack of a stolen key.
func TestLeafSignsNothing(t *testing.T) {
	c, err := LoadOrCreate(Options{Dir: t.TempDir(), Names: []string{"node1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if !isLeaf(c.Leaf) || c.Leaf.IsCA || c.Leaf.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Errorf("certificate: IsCA=%v BasicConstraintsValid=%v KeyUsage=%b", c.Leaf.IsCA, c.Leaf.BasicConstraintsValid, c.Leaf.KeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Leaf)
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "node1"}); err != nil {
		t.Errorf("the pinned certificate itself does not verify: %v", err)
	}
	child := signChild(t, c.Leaf, c.TLS.PrivateKey.(*ecdsa.PrivateKey), "bank.example")
	if _, err := child.Verify(x509.VerifyOptions{Roots: roots, DNSName: "bank.example"}); err == nil {
		t.Error("a certificate for bank.example signed with the node's key verifies")
	}
	// The reason is the node's certificate, not a flaw in the child.
	if err := child.CheckSignatureFrom(c.Leaf); !errors.As(err, new(x509.ConstraintViolationError)) {
		t.Errorf("CheckSignatureFrom the node's certificate: %v, want a constraint violation", err)
	}
}

// signChild makes a certificate for name signed by key, naming parent as
// its issuer: what a thief of the node's key would do. The parent's copy
// is marked a CA only so that Go's CreateCertificate agrees to sign; the
// verifier sees the real parent.
func signChild(t *testing.T, parent *x509.Certificate, key *ecdsa.PrivateKey, name string) *x509.Certificate {
	t.Helper()
	issuer := *parent
	issuer.IsCA, issuer.BasicConstraintsValid, issuer.KeyUsage = true, true, x509.KeyUsageCertSign
	childKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &issuer, &childKey.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	child, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return child
}

// storeOldCA writes the certificate nodes made before this package made
// leaves: a self-signed CA without name constraints.
func storeOldCA(t *testing.T, dir string, names []string) (*Cert, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, DNSNames: names}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cert{TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, Leaf: leaf, Fingerprint: Fingerprint(der)}
	if err := store(dir, c); err != nil {
		t.Fatal(err)
	}
	return c, key
}

// TestMigrateCA: a node that kept the old CA certificate gets a leaf and a
// new key at its next start, with a warning naming the old fingerprint;
// the old key is gone from the folder (not kept aside), so it can sign
// nothing more for a browser that trusted the old CA.
func TestMigrateCA(t *testing.T) {
	dir := t.TempDir()
	names := []string{"node1", "node1.local", "localhost"}
	old, oldKey := storeOldCA(t, dir, names)
	// Before the migration, the attack works: that is why it exists.
	roots := x509.NewCertPool()
	roots.AddCert(old.Leaf)
	if _, err := signChild(t, old.Leaf, oldKey, "bank.example").Verify(x509.VerifyOptions{Roots: roots, DNSName: "bank.example"}); err != nil {
		t.Fatalf("the old CA's child does not verify, so this test proves nothing: %v", err)
	}
	var logs bytes.Buffer
	c, err := LoadOrCreate(Options{Dir: dir, Names: names, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Created || !isLeaf(c.Leaf) || c.Fingerprint == old.Fingerprint {
		t.Errorf("after migration: Created=%v leaf=%v same fingerprint=%v", c.Created, isLeaf(c.Leaf), c.Fingerprint == old.Fingerprint)
	}
	if c.TLS.PrivateKey.(*ecdsa.PrivateKey).Equal(oldKey) {
		t.Error("the CA's key was kept")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), old.Fingerprint) {
		t.Errorf("no warning naming the old fingerprint:\n%s", logs.String())
	}
	oldDER, err := x509.MarshalPKCS8PrivateKey(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	oldPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: oldDER})
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if b, _ := os.ReadFile(filepath.Join(dir, e.Name())); bytes.Contains(b, oldPEM) {
			t.Errorf("the old CA key is still in %s", e.Name())
		}
	}
	again, err := LoadOrCreate(Options{Dir: dir, Names: names})
	if err != nil || again.Created || again.Fingerprint != c.Fingerprint {
		t.Errorf("the leaf is not reused: %v", err)
	}
}

// TestReissueForNames: a certificate that lacks a name (a renamed node, or
// a release that adds names) is issued again under the same key: the
// fingerprint changes, the public key (what SPKI pins hold) does not.
func TestReissueForNames(t *testing.T) {
	dir := t.TempDir()
	old, err := LoadOrCreate(Options{Dir: dir, Names: []string{"node1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, names := range [][]string{{"node1", "localhost", "node1.byzantium.mesh", "wiki.node1.byzantium.mesh"}, {"renamed", "localhost"}} {
		var logs bytes.Buffer
		c, err := LoadOrCreate(Options{Dir: dir, Names: names, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if !c.Created || c.Fingerprint == old.Fingerprint || missingName(c.Leaf, names) != "" || !isLeaf(c.Leaf) {
			t.Errorf("%v: Created=%v, same fingerprint=%v, missing %q", names, c.Created, c.Fingerprint == old.Fingerprint, missingName(c.Leaf, names))
		}
		if !c.TLS.PrivateKey.(*ecdsa.PrivateKey).Equal(old.TLS.PrivateKey) {
			t.Errorf("%v: the key changed", names)
		}
		if strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("%v: a warning for new names:\n%s", names, logs.String())
		}
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

package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cheap keeps the tests fast; the cost is a parameter, not the logic.
var cheap = HashParams{Time: 1, Memory: 64, Threads: 1}

func TestHashes(t *testing.T) {
	h := HashPassword("correct horse", cheap)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q", h)
	}
	if !VerifyPassword(h, "correct horse") || VerifyPassword(h, "correct horsE") || VerifyPassword(h, "") {
		t.Error("VerifyPassword accepts or refuses the wrong passwords")
	}
	if HashPassword("correct horse", cheap) == h {
		t.Error("two hashes of one password are equal: no salt?")
	}
	for _, bad := range []string{
		"", "correct horse", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // 95 GiB: refused
		"$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$c2hvcnQ",
	} {
		if err := CheckHash(bad); !errors.Is(err, ErrBadHash) {
			t.Errorf("CheckHash(%q) = %v", bad, err)
		}
		if VerifyPassword(bad, "correct horse") {
			t.Errorf("VerifyPassword with hash %q succeeded", bad)
		}
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func openStore(t *testing.T, dir string, c *clock) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.SetHashParams(cheap)
	s.Now = c.now
	return s
}

// TestClaimAndLogin walks a node's life: unclaimed (login refused, a setup
// code), claimed with that code (kept on disk, the code gone), logins
// slowed after repeated failures, sessions that expire, a password change
// that ends the other sessions.
func TestClaimAndLogin(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	s := openStore(t, dir, c)
	if s.Claimed() {
		t.Fatal("a new store is claimed")
	}
	if _, err := s.Login("10.0.0.1", "anything"); !errors.Is(err, ErrNotClaimed) {
		t.Errorf("login before setup: %v", err)
	}
	code := s.SetupCode()
	if len(code) != 11 || code != s.SetupCode() {
		t.Errorf("setup code %q (again %q)", code, s.SetupCode())
	}
	if err := s.Claim("10.0.0.1", "wrong-code", "long enough pass"); !errors.Is(err, ErrBadSetupCode) {
		t.Errorf("claim with a wrong code: %v", err)
	}
	if err := s.Claim("10.0.0.1", code, "short"); !errors.Is(err, ErrWeakPassword) {
		t.Errorf("claim with a short password: %v", err)
	}
	if err := s.Claim("10.0.0.1", " "+strings.ToUpper(code)+" ", "long enough pass"); err != nil {
		t.Fatalf("claim: %v", err)
	}
	if s.SetupCode() != "" || !s.Claimed() {
		t.Error("claimed, yet a setup code is still offered")
	}
	if err := s.Claim("10.0.0.1", code, "another password"); !errors.Is(err, ErrClaimed) {
		t.Errorf("second claim: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "admin.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.json: %v, %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "admin.json")); strings.Contains(string(b), "long enough pass") {
		t.Error("the password is in admin.json")
	}
	s = openStore(t, dir, c) // as after a reboot
	if !s.Claimed() {
		t.Fatal("the claim did not survive reopening")
	}

	// Three failures are free, then each attempt waits 1 s, 2 s, 4 s...
	for i := 0; i < 3; i++ {
		if _, err := s.Login("10.0.0.9", "nope"); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("bad login %d: %v", i, err)
		}
	}
	var slow *SlowDown
	if _, err := s.Login("10.0.0.9", "long enough pass"); !errors.As(err, &slow) || slow.RetryAfter != time.Second {
		t.Fatalf("the 4th attempt at once: %v", err)
	}
	if _, err := s.Login("10.0.0.8", "long enough pass"); err != nil {
		t.Errorf("another address is slowed too: %v", err)
	}
	c.advance(time.Second)
	if _, err := s.Login("10.0.0.9", "nope"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("after waiting: %v", err)
	}
	if _, err := s.Login("10.0.0.9", "long enough pass"); !errors.As(err, &slow) || slow.RetryAfter != 2*time.Second {
		t.Fatalf("after a 4th failure: %v", err)
	}
	c.advance(2 * time.Second)
	sess, err := s.Login("10.0.0.9", "long enough pass")
	if err != nil {
		t.Fatalf("the right password after waiting: %v", err)
	}
	if _, err := s.Login("10.0.0.9", "nope"); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("a success did not clear the failures: %v", err)
	}
	if got := s.Session(sess.ID); got == nil || got.CSRF != sess.CSRF || len(sess.CSRF) < 40 {
		t.Errorf("session %+v", got)
	}
	other, _ := s.Login("10.0.0.2", "long enough pass")
	c.advance(SessionTTL - time.Minute)
	if s.Session(sess.ID) == nil {
		t.Error("a session used within its TTL expired")
	}
	if err := s.ChangePassword("10.0.0.9", "nope", "a new password", sess.ID); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("change with a wrong current password: %v", err)
	}
	if err := s.ChangePassword("10.0.0.9", "long enough pass", "a new password", sess.ID); err != nil {
		t.Fatal(err)
	}
	if s.Session(other.ID) != nil || s.Session(sess.ID) == nil {
		t.Error("a password change must end the other sessions and keep the one that made it")
	}
	if _, err := s.Login("10.0.0.3", "a new password"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	c.advance(SessionTTL + time.Second)
	if s.Session(sess.ID) != nil {
		t.Error("an idle session outlived its TTL")
	}
	s.Logout(sess.ID)
}

func TestProvision(t *testing.T) {
	c := &clock{time.Now()}
	s := openStore(t, t.TempDir(), c)
	if _, err := s.Provision("not a hash"); !errors.Is(err, ErrBadHash) {
		t.Errorf("provision of a bad hash: %v", err)
	}
	ok, err := s.Provision(HashPassword("from the host!", cheap))
	if !ok || err != nil || s.SetupCode() != "" {
		t.Fatalf("provision of an unclaimed node: %v %v", ok, err)
	}
	if _, err := s.Login("h", "from the host!"); err != nil {
		t.Errorf("login with the provisioned password: %v", err)
	}
	// The operator's own password wins over any later credential.
	if err := s.ChangePassword("h", "from the host!", "the operator's own", ""); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Provision(HashPassword("from the host!", cheap)); ok {
		t.Error("a credential replaced the operator's password")
	}
}

// TestTokens: making a token takes the admin password (a wrong one counts
// as a failed login), the secret is never stored, and revoking works; the
// root-only socket's NewLocalToken needs no password.
func TestTokens(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	s := openStore(t, dir, c)
	if _, _, err := s.NewToken("10.0.0.1", "the admin password", "ci"); !errors.Is(err, ErrNotClaimed) {
		t.Errorf("a token on an unclaimed node: %v", err)
	}
	if _, err := s.Provision(HashPassword("the admin password", cheap)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.NewToken("10.0.0.1", "the admin password", "  "); !errors.Is(err, ErrBadTokenName) {
		t.Errorf("a token without a name: %v", err)
	}
	for i := 0; i < freeFailures; i++ {
		if _, _, err := s.NewToken("10.0.0.1", "a stolen session's guess", "ci"); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("a token with a wrong password: %v", err)
		}
	}
	var slow *SlowDown
	if _, _, err := s.NewToken("10.0.0.1", "the admin password", "ci"); !errors.As(err, &slow) {
		t.Errorf("wrong passwords for tokens are not counted as failures: %v", err)
	}
	if len(s.Tokens()) != 0 {
		t.Fatalf("refused attempts made tokens: %v", s.Tokens())
	}
	secret, tok, err := s.NewToken("10.0.0.2", "the admin password", "ci")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.CheckToken(secret); !ok || got.ID != tok.ID {
		t.Errorf("CheckToken: %v %v", got, ok)
	}
	if _, ok := s.CheckToken(secret + "x"); ok {
		t.Error("a wrong secret passes")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tokens.json")); strings.Contains(string(b), secret) {
		t.Error("the secret is stored")
	}
	local, _, err := s.NewLocalToken("byz on the node")
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, c)
	if _, ok := s.CheckToken(secret); !ok {
		t.Error("the token did not survive reopening")
	}
	if _, ok := s.CheckToken(local); !ok {
		t.Error("the local token did not survive reopening")
	}
	if err := s.RevokeToken(tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.CheckToken(secret); ok || s.RevokeToken(tok.ID) == nil {
		t.Error("a revoked token still works, or revokes twice")
	}
}

// smbiosTable builds a raw SMBIOS table: a type 1 structure with one
// string, a type 11 with the given strings, and the end marker.
func smbiosTable(strs ...string) []byte {
	var b []byte
	b = append(b, 1, 8, 1, 0, 1, 0, 0, 0) // type 1, 8 bytes, handle 1
	b = append(b, "QEMU\x00\x00"...)
	b = append(b, 11, 5, 2, 0, byte(len(strs)))
	for _, s := range strs {
		b = append(b, s...)
		b = append(b, 0)
	}
	b = append(b, 0)
	b = append(b, 127, 4, 3, 0, 0, 0)
	return b
}

func TestReadCredentials(t *testing.T) {
	root := t.TempDir()
	write := func(p, data string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(CredentialsDir+"/"+CredPasswordHash, "$argon2id$from-image\n")
	write(CredentialsDir+"/"+CredPassword, "image password\n")
	write(fwCfgDir+"/byz.other/raw", "via fw_cfg")
	write(dmiTable, string(smbiosTable("vendor string", "io.systemd.credential:"+CredPassword+"=host pass=with equals",
		"io.systemd.credential.binary:byz.bin=aGVsbG8=", "io.systemd.credential:=nameless")))
	got := ReadCredentials(root)
	want := map[string]Credential{
		CredPasswordHash: {[]byte("$argon2id$from-image"), "image"},
		CredPassword:     {[]byte("host pass=with equals"), "smbios"}, // the host's wins
		"byz.other":      {[]byte("via fw_cfg"), "fw_cfg"},
		"byz.bin":        {[]byte("hello"), "smbios"},
	}
	if len(got) != len(want) {
		t.Errorf("got %d credentials: %v", len(got), got)
	}
	for k, w := range want {
		if g := got[k]; string(g.Value) != string(w.Value) || g.Source != w.Source {
			t.Errorf("%s: %q from %s, want %q from %s", k, g.Value, g.Source, w.Value, w.Source)
		}
	}
	// A truncated table gives what it can, and never panics.
	tab := smbiosTable("io.systemd.credential:a=b")
	for n := range tab {
		oemStrings(tab[:n])
	}
}

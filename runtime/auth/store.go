package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

var (
	// ErrWrongPassword is a failed login (or a wrong current password).
	ErrWrongPassword = errors.New("auth: wrong password")
	// ErrWeakPassword is a new password that is too short.
	ErrWeakPassword = fmt.Errorf("auth: the password must have at least %d characters", MinPassword)
	// ErrBadSetupCode is a wrong or used setup code.
	ErrBadSetupCode = errors.New("auth: wrong setup code (it is shown on the node's console)")
	// ErrClaimed is a setup attempt on a node that has an admin password.
	ErrClaimed = errors.New("auth: this node is already set up")
	// ErrNotClaimed is a login on a node without a password yet.
	ErrNotClaimed = errors.New("auth: this node has no admin password yet: set it up with the code on its console")
)

// SlowDown is the error of a login refused because of earlier failures
// from the same address.
type SlowDown struct{ RetryAfter time.Duration }

func (e *SlowDown) Error() string {
	return fmt.Sprintf("auth: too many failed logins: try again in %s", e.RetryAfter.Round(time.Second))
}

// SessionTTL is how long a browser session lasts without use.
const SessionTTL = 12 * time.Hour

// Session is one logged-in browser (or API client that logged in).
type Session struct {
	ID       string
	CSRF     string // the token every form of this session carries
	Created  time.Time
	LastSeen time.Time
}

// Token is an API token; only its hash is kept.
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Hash    string    `json:"hash"` // sha256 of the secret, hex
	Created time.Time `json:"created"`
}

// Store keeps the admin password hash and API tokens in its folder
// (files written whole, mode 0600) and the sessions in memory.
type Store struct {
	dir string
	// Now is the clock; tests set it.
	Now func() time.Time

	mu          sync.Mutex
	admin       string // argon2id PHC string, "" before setup
	provisioned bool   // admin came from a credential, not the folder
	tokens      []Token
	sessions    map[string]*Session
	setupCode   string
	limiter     limiter
	hashParams  HashParams
}

type adminFile struct {
	Hash string    `json:"hash"`
	Set  time.Time `json:"set"`
}

// Open reads the store in dir, making dir if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s := &Store{dir: dir, Now: time.Now, sessions: map[string]*Session{}, hashParams: DefaultHash}
	var a adminFile
	if err := readJSON(filepath.Join(dir, "admin.json"), &a); err != nil {
		return nil, err
	}
	if a.Hash != "" {
		if err := CheckHash(a.Hash); err != nil {
			return nil, fmt.Errorf("auth: %s: %w", filepath.Join(dir, "admin.json"), err)
		}
		s.admin = a.Hash
	}
	if err := readJSON(filepath.Join(dir, "tokens.json"), &s.tokens); err != nil {
		return nil, err
	}
	return s, nil
}

// SetHashParams sets the cost of new password hashes (tests use a low
// one).
func (s *Store) SetHashParams(p HashParams) { s.hashParams = p }

// Claimed reports whether the node has an admin password.
func (s *Store) Claimed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admin != ""
}

// SetupCode returns the one-time code that claims an unclaimed node,
// making it on first use; "" once claimed. byzd prints it on the console.
func (s *Store) SetupCode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != "" {
		return ""
	}
	if s.setupCode == "" {
		// 10 characters from an alphabet without look-alikes: easy to
		// copy from a screen, 50 bits.
		const alphabet = "23456789abcdefghjkmnpqrstuvwxyz"
		b := make([]byte, 10)
		rand.Read(b)
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		s.setupCode = string(b[:5]) + "-" + string(b[5:])
	}
	return s.setupCode
}

// Claim sets the first admin password with the setup code. Failures
// count against remote as failed logins do.
func (s *Store) Claim(remote, code, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != "" {
		return ErrClaimed
	}
	if err := s.limiter.allowed(remote, s.Now()); err != nil {
		return err
	}
	want := s.setupCode
	if want == "" || subtle.ConstantTimeCompare([]byte(strings.ToLower(strings.TrimSpace(code))), []byte(want)) != 1 {
		s.limiter.fail(remote, s.Now())
		return ErrBadSetupCode
	}
	if len([]rune(password)) < MinPassword {
		return ErrWeakPassword
	}
	if err := s.writeAdmin(HashPassword(password, s.hashParams)); err != nil {
		return err
	}
	s.setupCode = ""
	s.limiter.reset(remote)
	return nil
}

// Provision sets the admin password hash from a credential (a spec's, or
// one the VM host passed) for this run of byzd, unless the node has its
// own password already: a credential never overrides the operator's
// choice. It is not written to the folder.
func (s *Store) Provision(hash string) (bool, error) {
	if err := CheckHash(hash); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != "" {
		return false, nil
	}
	s.admin, s.provisioned, s.setupCode = hash, true, ""
	return true, nil
}

// ChangePassword replaces the admin password after checking the current
// one; every session but keep is ended.
func (s *Store) ChangePassword(remote, current, next, keep string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.limiter.allowed(remote, s.Now()); err != nil {
		return err
	}
	if s.admin == "" || !VerifyPassword(s.admin, current) {
		s.limiter.fail(remote, s.Now())
		return ErrWrongPassword
	}
	if len([]rune(next)) < MinPassword {
		return ErrWeakPassword
	}
	if err := s.writeAdmin(HashPassword(next, s.hashParams)); err != nil {
		return err
	}
	for id := range s.sessions {
		if id != keep {
			delete(s.sessions, id)
		}
	}
	return nil
}

func (s *Store) writeAdmin(hash string) error {
	if err := writeJSON(filepath.Join(s.dir, "admin.json"), adminFile{Hash: hash, Set: s.Now().UTC()}); err != nil {
		return err
	}
	s.admin, s.provisioned = hash, false
	return nil
}

// Login checks the password and opens a session. Failed attempts from
// one address are slowed: see limiter.
func (s *Store) Login(remote, password string) (*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	if err := s.limiter.allowed(remote, now); err != nil {
		return nil, err
	}
	if s.admin == "" {
		return nil, ErrNotClaimed
	}
	if !VerifyPassword(s.admin, password) {
		s.limiter.fail(remote, now)
		return nil, ErrWrongPassword
	}
	s.limiter.reset(remote)
	sess := &Session{ID: randomToken(32), CSRF: randomToken(32), Created: now, LastSeen: now}
	s.sessions[sess.ID] = sess
	return sess, nil
}

// Session returns the live session with that ID, or nil.
func (s *Store) Session(id string) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[id]
	if sess == nil {
		return nil
	}
	now := s.Now()
	if now.Sub(sess.LastSeen) > SessionTTL {
		delete(s.sessions, id)
		return nil
	}
	sess.LastSeen = now
	c := *sess
	return &c
}

// Logout ends a session.
func (s *Store) Logout(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
}

// NewToken makes an API token called name and returns its secret, which
// is shown once and never kept.
func (s *Store) NewToken(name string) (string, Token, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 {
		return "", Token{}, errors.New("auth: give the token a name of at most 64 characters")
	}
	secret := "byz_" + randomToken(32)
	sum := sha256.Sum256([]byte(secret))
	t := Token{ID: randomToken(6), Name: name, Hash: hex.EncodeToString(sum[:]), Created: s.Now().UTC().Truncate(time.Second)}
	s.mu.Lock()
	defer s.mu.Unlock()
	tokens := append(append([]Token(nil), s.tokens...), t)
	if err := writeJSON(filepath.Join(s.dir, "tokens.json"), tokens); err != nil {
		return "", Token{}, err
	}
	s.tokens = tokens
	return secret, t, nil
}

// CheckToken returns the token whose secret this is.
func (s *Store) CheckToken(secret string) (Token, bool) {
	sum := sha256.Sum256([]byte(secret))
	h := hex.EncodeToString(sum[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) == 1 {
			return t, true
		}
	}
	return Token{}, false
}

// Tokens lists the API tokens (without secrets).
func (s *Store) Tokens() []Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Token(nil), s.tokens...)
}

// RevokeToken deletes a token.
func (s *Store) RevokeToken(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kept []Token
	for _, t := range s.tokens {
		if t.ID != id {
			kept = append(kept, t)
		}
	}
	if len(kept) == len(s.tokens) {
		return fmt.Errorf("auth: no token %q", id)
	}
	if err := writeJSON(filepath.Join(s.dir, "tokens.json"), kept); err != nil {
		return err
	}
	s.tokens = kept
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("auth: %s: %w", path, err)
	}
	return nil
}

// writeJSON writes v to path whole: a temporary file, synced, renamed.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

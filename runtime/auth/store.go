package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	// ErrBusy is a password check refused because maxChecking others
	// are running; it comes inside a *SlowDown.
	ErrBusy = errors.New("auth: too many password checks at once")
	// ErrNodeLimit is an attempt refused because the node as a whole has
	// seen too many failures lately (from any number of addresses); it
	// comes inside a *SlowDown.
	ErrNodeLimit = errors.New("auth: too many failed logins on this node")
	// ErrBadTokenName is a token name that is empty or too long.
	ErrBadTokenName = errors.New("auth: give the token a name of at most 64 characters")
)

// SlowDown is the error of an attempt refused for now: after earlier
// failures from the same network (Err nil), after too many failures on
// the whole node (Err is ErrNodeLimit), or while too many password checks
// run (Err is ErrBusy). HTTP answers it with 429 and Retry-After.
type SlowDown struct {
	RetryAfter time.Duration
	Err        error
}

func (e *SlowDown) Error() string {
	wait := e.RetryAfter.Round(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	if e.Err != nil {
		return fmt.Sprintf("%v: try again in %s", e.Err, wait)
	}
	return fmt.Sprintf("auth: too many failed logins: try again in %s", wait)
}

func (e *SlowDown) Unwrap() error { return e.Err }

const (
	// SessionTTL is how long a session lasts without use.
	SessionTTL = 12 * time.Hour
	// SessionMaxAge is how long a session lasts at most, however much it
	// is used: a stolen session token does not live for ever.
	SessionMaxAge = 24 * time.Hour
	// MaxSessions bounds the live sessions: a new one beyond it ends the
	// one least recently used. Only the password opens sessions, so this
	// bounds scripts that log in for every call, not attackers.
	MaxSessions = 64
	// maxChecking is how many argon2 password checks may run at once;
	// more are refused with ErrBusy rather than queued. Each takes 19 MiB
	// and a processor for tens of milliseconds (more under emulation).
	// One leaves the other processors to byzd and the services, bounds
	// the memory an attacker can make byzd hold, and measured better than
	// two even for the checks themselves (BenchmarkSessionUnderAttack on
	// two processors: 38 checks/s against 10, Session p99 1-4 ms against
	// 22-32 ms). A legitimate login meets a running check rarely: the
	// node-wide budget admits one failure every 10 s once spent.
	maxChecking = 1
)

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
//
// Its lock guards the maps and the limiter only: password checks (argon2,
// tens of milliseconds) run outside it, at most maxChecking at once, so a
// stream of wrong passwords never stalls Session and the pages it serves.
type Store struct {
	dir string
	// Now is the clock; tests set it.
	Now func() time.Time
	// Log receives failed and refused attempts, a few lines a minute
	// however many there are (see failureLog); nil discards them.
	Log *slog.Logger

	checking chan struct{} // the semaphore of password checks
	failures failureLog
	// checkHook, if set, runs in every password check after the lock
	// is released and before argon2: tests hold a check there.
	checkHook func()

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
	s := &Store{dir: dir, Now: time.Now, sessions: map[string]*Session{}, hashParams: DefaultHash,
		checking: make(chan struct{}, maxChecking)}
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
	if s.admin != "" {
		s.mu.Unlock()
		return ErrClaimed
	}
	now := s.Now()
	if err := s.limiter.check(remote, now); err != nil {
		s.mu.Unlock()
		s.failures.record(s.Log, "setup", remote, true)
		return err
	}
	want := s.setupCode
	if want == "" || subtle.ConstantTimeCompare([]byte(strings.ToLower(strings.TrimSpace(code))), []byte(want)) != 1 {
		s.limiter.fail(remote, now)
		s.mu.Unlock()
		s.failures.record(s.Log, "setup", remote, false)
		return ErrBadSetupCode
	}
	s.mu.Unlock()
	if len([]rune(password)) < MinPassword {
		return ErrWeakPassword
	}
	hash := s.hash(password)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != "" {
		return ErrClaimed // another claim won while this one hashed
	}
	if err := s.writeAdmin(hash); err != nil {
		return err
	}
	s.setupCode = ""
	s.limiter.succeed(remote, s.Now())
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

// checkPassword checks password against the admin's for remote, under the
// limiter, outside the lock and behind the semaphore of checks. The
// attempt counts as a failure before argon2 runs and is cleared by a
// right password, so attempts running at once cannot all pass the
// limiter. what names the attempt in the log.
func (s *Store) checkPassword(what, remote, password string) error {
	s.mu.Lock()
	if s.admin == "" {
		s.mu.Unlock()
		return ErrNotClaimed
	}
	now := s.Now()
	if err := s.limiter.check(remote, now); err != nil {
		s.mu.Unlock()
		s.failures.record(s.Log, what, remote, true)
		return err
	}
	select {
	case s.checking <- struct{}{}:
	default:
		s.mu.Unlock()
		s.failures.record(s.Log, what, remote, true)
		return &SlowDown{RetryAfter: time.Second, Err: ErrBusy}
	}
	s.limiter.fail(remote, now)
	hash := s.admin
	s.mu.Unlock()

	if s.checkHook != nil {
		s.checkHook()
	}
	ok := VerifyPassword(hash, password)
	<-s.checking

	if !ok {
		s.failures.record(s.Log, what, remote, false)
		return ErrWrongPassword
	}
	s.mu.Lock()
	s.limiter.succeed(remote, s.Now())
	s.mu.Unlock()
	return nil
}

// hash hashes a new password behind the semaphore of checks (waiting
// for a turn: only a claim or an authenticated change gets here), so
// argon2's memory stays bounded.
func (s *Store) hash(password string) string {
	s.checking <- struct{}{}
	defer func() { <-s.checking }()
	return HashPassword(password, s.hashParams)
}

// ChangePassword replaces the admin password after checking the current
// one; every session but keep is ended.
func (s *Store) ChangePassword(remote, current, next, keep string) error {
	if len([]rune(next)) < MinPassword {
		return ErrWeakPassword
	}
	if err := s.checkPassword("password change", remote, current); err != nil {
		if errors.Is(err, ErrNotClaimed) {
			return ErrWrongPassword
		}
		return err
	}
	hash := s.hash(next)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeAdmin(hash); err != nil {
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

// Login checks the password and opens a session. Failed attempts are
// slowed: see limiter.
func (s *Store) Login(remote, password string) (*Session, error) {
	if err := s.checkPassword("login", remote, password); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	// Sweep the expired, then end the least recently used beyond the
	// bound.
	for id, sess := range s.sessions {
		if !live(sess, now) {
			delete(s.sessions, id)
		}
	}
	for len(s.sessions) >= MaxSessions {
		var lru *Session
		for _, sess := range s.sessions {
			if lru == nil || sess.LastSeen.Before(lru.LastSeen) {
				lru = sess
			}
		}
		delete(s.sessions, lru.ID)
	}
	sess := &Session{ID: randomToken(32), CSRF: randomToken(32), Created: now, LastSeen: now}
	s.sessions[sess.ID] = sess
	c := *sess
	return &c, nil
}

// live reports whether a session may still be used at now.
func live(sess *Session, now time.Time) bool {
	return now.Sub(sess.LastSeen) <= SessionTTL && now.Sub(sess.Created) <= SessionMaxAge
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
	if !live(sess, now) {
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

// NewToken makes an API token called name, after checking the admin
// password (a token outlives every session, so a stolen session must not
// be enough to make one), and returns its secret, which is shown once and
// never kept. A wrong password counts as a failed login.
func (s *Store) NewToken(remote, password, name string) (string, Token, error) {
	name, err := tokenName(name)
	if err != nil {
		return "", Token{}, err
	}
	if err := s.checkPassword("token", remote, password); err != nil {
		return "", Token{}, err
	}
	return s.mintToken(name)
}

// NewLocalToken makes an API token without the password, for callers
// that are root on the node already (byzd's unix socket).
func (s *Store) NewLocalToken(name string) (string, Token, error) {
	name, err := tokenName(name)
	if err != nil {
		return "", Token{}, err
	}
	return s.mintToken(name)
}

func tokenName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 {
		return "", ErrBadTokenName
	}
	return name, nil
}

func (s *Store) mintToken(name string) (string, Token, error) {
	secret := "byz_" + randomToken(32)
	sum := sha256.Sum256([]byte(secret))
	s.mu.Lock()
	defer s.mu.Unlock()
	t := Token{ID: randomToken(6), Name: name, Hash: hex.EncodeToString(sum[:]), Created: s.Now().UTC().Truncate(time.Second)}
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

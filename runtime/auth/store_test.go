package auth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// within runs f and fails the test if it has not returned after a
// generous while: what it proves is that f does not wait for a blocked
// password check, which would make it wait for ever.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s waited for a password check that is held mid-way", what)
	}
}

// TestChecksOutsideLock holds a password check mid-way (in the hook that
// runs where argon2 would) and shows that nothing else waits for it:
// Session (every page render), the token list, and an admin's actions
// (a token made and revoked, a logout) complete. And that the checks are
// bounded: with maxChecking held, the next is refused at once with
// ErrBusy inside a *SlowDown (HTTP 429 with Retry-After), and counts as
// no failure.
func TestChecksOutsideLock(t *testing.T) {
	c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s := claimedStore(t, c)
	admin, err := s.Login("10.0.0.1", "the admin password")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Login("10.0.0.2", "the admin password")
	if err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	var holding atomic.Bool
	s.checkHook = func() { // holds the first check only
		if holding.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := s.Login("10.6.6.6", "a guess"); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("the held login: %v", err)
		}
	}()
	<-held
	within(t, "Session", func() {
		if s.Session(admin.ID) == nil {
			t.Error("the admin's session is gone")
		}
	})
	within(t, "Tokens and Claimed", func() { s.Tokens(); s.Claimed() })
	within(t, "an admin's actions", func() {
		_, tok, err := s.NewLocalToken("made while a check runs")
		if err != nil {
			t.Error(err)
			return
		}
		if err := s.RevokeToken(tok.ID); err != nil {
			t.Error(err)
		}
		s.Logout(other.ID)
	})

	// Now hold every slot: the next check is refused, not queued.
	s.checkHook = nil
	for len(s.checking) < maxChecking {
		s.checking <- struct{}{}
	}
	_, err = s.Login("10.7.7.7", "the admin password")
	var slow *SlowDown
	if !errors.As(err, &slow) || !errors.Is(err, ErrBusy) || slow.RetryAfter <= 0 {
		t.Errorf("a check beyond %d at once: %v, want ErrBusy in a *SlowDown", maxChecking, err)
	}
	for len(s.checking) > 1 { // the held login keeps its own slot
		<-s.checking
	}
	close(release)
	wg.Wait()
	if _, err := s.Login("10.7.7.7", "the admin password"); err != nil {
		t.Errorf("a busy refusal counted against the address: %v", err)
	}
}

// TestChecksRaceFree runs logins, wrong and right, at once with pages
// (Session) under the race detector: the limiter counts each wrong one
// before its check, so eight attempts at once from one network cannot all
// pass the three free failures.
func TestChecksRaceFree(t *testing.T) {
	c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s := claimedStore(t, c)
	admin, err := s.Login("10.0.0.1", "the admin password")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wrong := 0
	for g := 0; g < 8; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				_, err := s.Login("fe80::66", "a guess")
				if errors.Is(err, ErrWrongPassword) {
					mu.Lock()
					wrong++
					mu.Unlock()
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if s.Session(admin.ID) == nil {
					t.Error("the admin's session vanished")
					return
				}
			}
		}()
	}
	wg.Wait()
	if wrong != freeFailures {
		t.Errorf("%d wrong passwords were checked from one network at once, want %d", wrong, freeFailures)
	}
}

// TestSessions: a session ends after SessionTTL unused, and after
// SessionMaxAge however much it is used; expired sessions are swept when
// a new one opens; beyond MaxSessions the least recently used one ends.
func TestSessions(t *testing.T) {
	c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s := claimedStore(t, c)
	busy, err := s.Login("10.0.0.1", "the admin password")
	if err != nil {
		t.Fatal(err)
	}
	for elapsed := time.Duration(0); elapsed < SessionMaxAge-time.Hour; elapsed += time.Hour {
		c.advance(time.Hour)
		if s.Session(busy.ID) == nil {
			t.Fatalf("a session used every hour ended after %s", elapsed+time.Hour)
		}
	}
	c.advance(2 * time.Hour)
	if s.Session(busy.ID) != nil {
		t.Errorf("a session used every hour outlived SessionMaxAge (%s)", SessionMaxAge)
	}

	for i := 0; i < 10; i++ {
		if _, err := s.Login("10.0.0.1", "the admin password"); err != nil {
			t.Fatal(err)
		}
	}
	c.advance(SessionTTL + time.Second)
	if _, err := s.Login("10.0.0.1", "the admin password"); err != nil {
		t.Fatal(err)
	}
	if n := len(s.sessions); n != 1 {
		t.Errorf("%d sessions after the others expired and a new one opened, want 1 (swept)", n)
	}

	var ids []string
	for i := 0; i < MaxSessions+10; i++ {
		c.advance(time.Second)
		sess, err := s.Login("10.0.0.1", "the admin password")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
		if i == 0 {
			defer func(id string) {
				if s.Session(id) == nil {
					t.Error("the session in use was evicted")
				}
			}(sess.ID)
		}
		c.advance(time.Second)
		s.Session(ids[0]) // the first stays in use
	}
	if n := len(s.sessions); n != MaxSessions {
		t.Errorf("%d sessions, want at most %d", n, MaxSessions)
	}
	if s.Session(ids[1]) != nil || s.Session(ids[len(ids)-1]) == nil {
		t.Error("the least recently used session was kept, or the newest evicted")
	}
}

// syncBuffer is a bytes.Buffer a logger and a test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestFailureLog: 1000 failed and refused logins from many networks add
// two lines to the log: the first at once, the rest summed up at the end
// of the interval. A single failure after a quiet interval shows at once.
func TestFailureLog(t *testing.T) {
	c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s := claimedStore(t, c)
	var logs syncBuffer
	s.Log = slog.New(slog.NewTextHandler(&logs, nil))
	s.failures.every = time.Hour // the test ends the interval itself
	for i := 0; i < 1000; i++ {
		addr := fmt.Sprintf("fe80::%x", i)
		if i%4 == 0 {
			addr = fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		}
		s.Login(addr, "a guess")
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "level=WARN msg=\"failed login\" from=10.0.0.0") {
		t.Errorf("during the flood, %d lines:\n%s", n, logs.String())
	}
	s.failures.flush()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "in the last 1h0m0s") || !strings.Contains(lines[1], "fe80::/64×750") {
		t.Fatalf("after the interval, %d lines:\n%s", len(lines), logs.String())
	}
	var failed, refused int
	fmt.Sscanf(lines[1][strings.Index(lines[1], "msg=")+5:], "%d failed and %d refused", &failed, &refused)
	if failed+refused != 999 || refused == 0 {
		t.Errorf("the summary counts %d failed and %d refused, want 999 in all, some refused:\n%s", failed, refused, lines[1])
	}
	s.failures.flush() // an interval with nothing: no line, and quiet
	if n := strings.Count(logs.String(), "\n"); n != 2 {
		t.Errorf("an empty interval added lines:\n%s", logs.String())
	}
	c.advance(time.Hour)
	s.Login("10.1.1.1", "a guess")
	if n := strings.Count(logs.String(), "\n"); n != 3 || !strings.HasSuffix(strings.TrimSpace(logs.String()), "from=10.1.1.1 note=\"further failures are summed up every 1h0m0s\"") {
		t.Errorf("a failure after a quiet interval is not logged at once:\n%s", logs.String())
	}
}

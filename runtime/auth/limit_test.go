package auth

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestLimitKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1"},
		{"10.0.0.2", "10.0.0.2"},
		{"::ffff:10.0.0.1", "10.0.0.1"}, // IPv4-mapped: the same host
		{"fe80::1", "fe80::/64"},
		{"fe80::1%eth0", "fe80::/64"}, // the zone names our interface, not the host
		{"fe80::ff%2", "fe80::/64"},
		{"fe80::dead:beef:1:2", "fe80::/64"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"127.0.0.1", "loopback"},
		{"127.8.9.10", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"not an address", "not an address"},
	} {
		if got := limitKey(tc.in); got != tc.want {
			t.Errorf("limitKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// claimedStore is a store with a provisioned password and the given clock.
func claimedStore(t testing.TB, c *clock) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.SetHashParams(cheap)
	s.Now = c.now
	if _, err := s.Provision(HashPassword("the admin password", cheap)); err != nil {
		t.Fatal(err)
	}
	return s
}

// failUntilSlowed makes failed logins from the addresses in turn and
// returns how many failed before one was refused (-1: none was).
func failUntilSlowed(t *testing.T, s *Store, addrs []string) (int, *SlowDown) {
	t.Helper()
	for i, a := range addrs {
		_, err := s.Login(a, "a guess")
		var slow *SlowDown
		if errors.As(err, &slow) {
			return i, slow
		}
		if !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("login %d from %s: %v", i, a, err)
		}
	}
	return -1, nil
}

// TestLimitOverflow: once the table holds 4096 networks with recent
// failures, a fresh address is counted in the shared overflow bucket, and
// slowed after three failures like any other. It used to count there
// while the check read only the address's own (empty) entry, so a fresh
// address guessed without end.
func TestLimitOverflow(t *testing.T) {
	c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s := claimedStore(t, c)
	s.limiter.globalBurst = 1e9 // this test is about the table, not the node-wide budget
	for i := 0; i < maxTracked; i++ {
		if _, err := s.Login(fmt.Sprintf("10.%d.%d.1", i/256, i%256), "a guess"); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("filling the table, login %d: %v", i, err)
		}
	}
	if len(s.limiter.seen) != maxTracked {
		t.Fatalf("%d networks tracked, want %d", len(s.limiter.seen), maxTracked)
	}
	fresh := make([]string, 20)
	for i := range fresh {
		fresh[i] = "192.168.77.1"
	}
	if n, _ := failUntilSlowed(t, s, fresh); n != freeFailures {
		t.Errorf("a fresh address after the table filled: %d failures before it was slowed, want %d", n, freeFailures)
	}
	if _, err := s.Login("192.168.77.2", "a guess"); !errors.As(err, new(*SlowDown)) {
		t.Errorf("another fresh address shares the overflow bucket, yet: %v", err)
	}
	// After a quiet hour the table makes room again.
	c.advance(forgetAfter + time.Minute)
	if _, err := s.Login("192.168.77.3", "a guess"); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("after an hour: %v", err)
	}
	if len(s.limiter.seen) > 2 {
		t.Errorf("the table kept %d stale networks", len(s.limiter.seen))
	}
}

// TestLimitNetworks: addresses a host can choose freely are one key.
// fe80::1…fe80::ff (with or without a zone) are slowed together after
// three failures; so are an IPv4 address and its IPv4-mapped form, and
// every loopback address. Another IPv4 address is not.
func TestLimitNetworks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs func(i int) string
	}{
		{"link-local", func(i int) string { return fmt.Sprintf("fe80::%x", i+1) }},
		{"link-local with zones", func(i int) string { return fmt.Sprintf("fe80::%x%%eth%d", i+1, i%3) }},
		{"one /64", func(i int) string { return fmt.Sprintf("2001:db8:0:7:%x::1", i+1) }},
		{"mapped IPv4", func(i int) string { return map[bool]string{true: "10.0.0.9", false: "::ffff:10.0.0.9"}[i%2 == 0] }},
		{"loopback", func(i int) string {
			return map[bool]string{true: fmt.Sprintf("127.0.0.%d", i+1), false: "::1"}[i%2 == 0]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
			s := claimedStore(t, c)
			var addrs []string
			for i := 0; i < 255; i++ {
				addrs = append(addrs, tc.addrs(i))
			}
			n, slow := failUntilSlowed(t, s, addrs)
			if n != freeFailures || slow.Err != nil {
				t.Fatalf("%d failures before one was slowed (%v), want %d by the network's own count", n, slow, freeFailures)
			}
			for _, a := range addrs[n:] {
				if _, err := s.Login(a, "the admin password"); !errors.As(err, new(*SlowDown)) {
					t.Fatalf("%s is not slowed with its network: %v", a, err)
				}
			}
			if _, err := s.Login("10.1.2.3", "the admin password"); err != nil {
				t.Errorf("another IPv4 address is slowed too: %v", err)
			}
		})
	}
}

// TestLimitNodeWide: 100 failures from 100 addresses (distinct IPv4
// addresses and distinct /64s, one guess each) meet the node-wide budget;
// while it is empty a new address is refused, but a network where the
// admin logged in keeps logging in; it refills with time.
func TestLimitNodeWide(t *testing.T) {
	c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s := claimedStore(t, c)
	if _, err := s.Login("10.9.9.9", "the admin password"); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := 0; i < 50; i++ {
		addrs = append(addrs, fmt.Sprintf("10.0.%d.%d", i/200, i%200+1), fmt.Sprintf("2001:db8:%x::1", i))
	}
	n, slow := failUntilSlowed(t, s, addrs)
	if n < 0 || n != globalBurst || !errors.Is(slow, ErrNodeLimit) || slow.RetryAfter <= 0 || slow.RetryAfter > globalEvery {
		t.Fatalf("100 addresses, one guess each: refused after %d (%v), want after %d by the node-wide budget", n, slow, globalBurst)
	}
	if _, err := s.Login("10.200.0.1", "the admin password"); !errors.Is(err, ErrNodeLimit) {
		t.Errorf("a new address while the budget is empty: %v", err)
	}
	if _, err := s.Login("10.9.9.9", "the admin password"); err != nil {
		t.Errorf("the admin's network is locked out by strangers: %v", err)
	}
	c.advance(globalEvery)
	if _, err := s.Login("10.200.0.2", "a guess"); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("after %s, one more guess: %v", globalEvery, err)
	}
	if _, err := s.Login("10.200.0.3", "a guess"); !errors.Is(err, ErrNodeLimit) {
		t.Errorf("and only one: %v", err)
	}
}

// benchUnlimit lifts the node-wide budget, for benchmarks that need every
// attempt checked.
func benchUnlimit(s *Store) { s.limiter.globalBurst = 1e12 }

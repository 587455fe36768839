package auth

import (
	"net/netip"
	"time"
)

// limiter slows repeated password and setup-code failures, in two ways.
//
// Per network: the first few failures are free (typos happen), then each
// further attempt must wait twice as long as the one before, up to
// maxDelay; a success clears the network. Networks are forgotten after a
// quiet hour, and the table is bounded: once it holds maxTracked recent
// networks, every new one is counted under one shared overflow key, which
// slows everyone rather than no one.
//
// Node-wide: a budget of failures (a token bucket, globalBurst deep,
// refilled by one every globalEvery) that no rotation of addresses can
// escape. While it is empty, attempts are refused, except from networks
// where a login succeeded lately (see good): the admin's own network is
// still only slowed by its own count, so a neighbour who drains the
// budget keeps new networks out, not the admin.
//
// The zero value works; tests set the knobs.
type limiter struct {
	seen map[string]*attempts
	good map[string]time.Time // key → last success

	budget   float64   // failures the node may still take at once
	refilled time.Time // when budget was last brought up to date

	// Knobs; zero means the default constant.
	tracked     int
	globalBurst float64
	globalEvery time.Duration
}

type attempts struct {
	failures int
	last     time.Time
}

const (
	freeFailures = 3
	firstDelay   = time.Second
	maxDelay     = 5 * time.Minute
	forgetAfter  = time.Hour
	maxTracked   = 4096
	overflowKey  = "*"
	loopbackKey  = "loopback"

	// globalBurst failures at once, then one every globalEvery: at most
	// 8,690 guesses a day whatever the attacker's addresses, yet a burst
	// of typos from a few people never meets it.
	globalBurst = 50
	globalEvery = 10 * time.Second

	// A network where a login succeeded stays exempt from the node-wide
	// budget for goodFor; at most maxGood such networks are kept.
	goodFor = 7 * 24 * time.Hour
	maxGood = 64
)

// limitKey is the network a remote address is counted under:
//   - an IPv6 address by its /64, the smallest network a host can be
//     assumed not to choose addresses in: a host picks its interface ID
//     freely (SLAAC privacy addresses, any number of link-local ones on
//     fe80::/64), so keying by address gave a neighbour three free
//     guesses per address it invented;
//   - an IPv4 address by itself: a mesh client network is a shared /24 or
//     wider, holding the admin's laptop beside the neighbour, so keying by
//     a wider prefix would let anyone lock the admin out; addresses a host
//     can take there are few and each one is a lease or a conflict, and
//     the node-wide budget caps what a rotation through them gains;
//   - the loopback (127.0.0.0/8 and ::1) as one key: every address in it
//     is the node itself, services included;
//   - an IPv4-mapped IPv6 address as its IPv4 address, and without its
//     zone (fe80::1%eth0 is fe80::1): the same host either way.
//
// A remote that is not an address (a unix socket, a test's name) is its
// own key.
func limitKey(remote string) string {
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return remote
	}
	a = a.WithZone("").Unmap()
	switch {
	case a.IsLoopback():
		return loopbackKey
	case a.Is4():
		return a.String()
	default:
		return netip.PrefixFrom(a, 64).Masked().String()
	}
}

func (l *limiter) delay(n int) time.Duration {
	if n < freeFailures {
		return 0
	}
	d := firstDelay << (n - freeFailures)
	if d > maxDelay || d <= 0 {
		d = maxDelay
	}
	return d
}

func (l *limiter) maxTracked() int {
	if l.tracked > 0 {
		return l.tracked
	}
	return maxTracked
}

// entry returns the attempts counted for key: its own, the overflow
// bucket's when the table is full of other networks, or nil when key has
// no failures yet and create is false.
func (l *limiter) entry(key string, now time.Time, create bool) *attempts {
	if l.seen == nil {
		l.seen = map[string]*attempts{}
	}
	if a := l.seen[key]; a != nil {
		return a
	}
	if create && len(l.seen) >= l.maxTracked() {
		for k, a := range l.seen {
			if now.Sub(a.last) > forgetAfter {
				delete(l.seen, k)
			}
		}
	}
	if len(l.seen) >= l.maxTracked() {
		key = overflowKey
		if a := l.seen[key]; a != nil || !create {
			return a
		}
	} else if !create {
		return nil
	}
	a := &attempts{}
	l.seen[key] = a
	return a
}

// global returns the node-wide budget's depth and refill period.
func (l *limiter) global() (burst float64, every time.Duration) {
	burst, every = l.globalBurst, l.globalEvery
	if burst == 0 {
		burst = globalBurst
	}
	if every == 0 {
		every = globalEvery
	}
	return burst, every
}

// refill brings the node-wide budget up to now.
func (l *limiter) refill(now time.Time) {
	burst, every := l.global()
	if l.refilled.IsZero() {
		l.budget, l.refilled = burst, now
		return
	}
	if d := now.Sub(l.refilled); d > 0 {
		l.budget = min(burst, l.budget+float64(d)/float64(every))
		l.refilled = now
	}
}

func (l *limiter) isGood(key string, now time.Time) bool {
	t, ok := l.good[key]
	return ok && now.Sub(t) < goodFor
}

// check returns a *SlowDown if remote must wait before trying again.
func (l *limiter) check(remote string, now time.Time) error {
	key := limitKey(remote)
	if a := l.entry(key, now, false); a != nil {
		if wait := a.last.Add(l.delay(a.failures)).Sub(now); wait > 0 {
			return &SlowDown{RetryAfter: wait}
		}
	}
	l.refill(now)
	if l.budget < 1 && !l.isGood(key, now) {
		_, every := l.global()
		return &SlowDown{RetryAfter: time.Duration((1 - l.budget) * float64(every)), Err: ErrNodeLimit}
	}
	return nil
}

// fail counts a failure of remote. Callers that check a password outside
// the lock count it before the check (and call succeed after a right
// one), so attempts running at once cannot all pass check.
func (l *limiter) fail(remote string, now time.Time) {
	key := limitKey(remote)
	a := l.entry(key, now, true)
	if now.Sub(a.last) > forgetAfter {
		a.failures = 0
	}
	a.failures++
	a.last = now
	if !l.isGood(key, now) {
		l.refill(now)
		l.budget = max(l.budget-1, 0)
	}
}

// succeed clears remote's network after a right password or code, gives
// back the budget its attempt took, and exempts the network from the
// node-wide budget for a while. The overflow bucket is shared with
// strangers: one success does not clear it.
func (l *limiter) succeed(remote string, now time.Time) {
	key := limitKey(remote)
	if !l.isGood(key, now) {
		l.refill(now)
		burst, _ := l.global()
		l.budget = min(l.budget+1, burst)
	}
	delete(l.seen, key)
	if l.good == nil {
		l.good = map[string]time.Time{}
	}
	if _, ok := l.good[key]; !ok && len(l.good) >= maxGood {
		oldest := ""
		for k, t := range l.good {
			if oldest == "" || t.Before(l.good[oldest]) {
				oldest = k
			}
		}
		delete(l.good, oldest)
	}
	l.good[key] = now
}

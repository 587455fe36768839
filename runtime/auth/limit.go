package auth

import "time"

// limiter slows repeated failures from one address: the first few are
// free (typos happen), then each further attempt must wait twice as long
// as the one before, up to maxDelay. A success clears the address.
// Addresses are forgotten after a quiet hour, and the table is bounded so
// a flood of addresses cannot grow it without end.
type limiter struct {
	seen map[string]*attempts
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
)

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

// allowed returns a *SlowDown if remote must wait before trying again.
func (l *limiter) allowed(remote string, now time.Time) error {
	a := l.seen[remote]
	if a == nil {
		return nil
	}
	if wait := a.last.Add(l.delay(a.failures)).Sub(now); wait > 0 {
		return &SlowDown{RetryAfter: wait}
	}
	return nil
}

func (l *limiter) fail(remote string, now time.Time) {
	if l.seen == nil {
		l.seen = map[string]*attempts{}
	}
	if len(l.seen) >= maxTracked {
		for k, a := range l.seen {
			if now.Sub(a.last) > forgetAfter {
				delete(l.seen, k)
			}
		}
	}
	a := l.seen[remote]
	if a == nil {
		if len(l.seen) >= maxTracked {
			// Still full of recent failures: count them all under one
			// key, which slows everyone rather than no one.
			remote = "*"
			if a = l.seen[remote]; a == nil {
				a = &attempts{}
				l.seen[remote] = a
			}
		} else {
			a = &attempts{}
			l.seen[remote] = a
		}
	}
	if now.Sub(a.last) > forgetAfter {
		a.failures = 0
	}
	a.failures++
	a.last = now
}

func (l *limiter) reset(remote string) { delete(l.seen, remote) }

package auth

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// failureLog reports failed and refused attempts (wrong passwords, wrong
// setup codes, attempts the limiter slowed) without letting an attacker
// write the log: byzd's log goes to the serial console, where 115200 baud
// is about 60 lines a second, and a logger blocked on it blocks every
// goroutine that logs.
//
// The first attempt after a quiet interval is logged at once, so a single
// typo still shows, with its network. The ones after it are counted, and
// at the end of each interval one line sums them up: how many, and from
// which networks (the busiest few by name, the rest as a count). A flood
// of any size is then one line, plus one line a minute while it lasts.
type failureLog struct {
	mu      sync.Mutex
	log     *slog.Logger
	pending bool // an interval is running: count, and sum up at its end
	failed  int
	refused int
	nets    map[string]int
	others  int // attempts from networks beyond maxLoggedNets
	// every is the interval; zero means failureLogEvery.
	every time.Duration
}

const (
	failureLogEvery = time.Minute
	// maxLoggedNets bounds the networks a summary counts by name.
	maxLoggedNets = 32
	// shownNets is how many of them the line names.
	shownNets = 5
)

// record counts one attempt of kind what (login, setup, …) from remote:
// refused by the limiter or the semaphore, or failed.
func (f *failureLog) record(log *slog.Logger, what, remote string, refused bool) {
	if log == nil {
		return
	}
	network := limitKey(remote)
	f.mu.Lock()
	if !f.pending {
		f.pending, f.log = true, log
		every := f.interval()
		f.mu.Unlock()
		time.AfterFunc(every, f.flush)
		msg := "failed " + what
		if refused {
			msg = "refused " + what + ": too many failures, try later"
		}
		log.Warn(msg, "from", network, "note", fmt.Sprintf("further failures are summed up every %s", every))
		return
	}
	if refused {
		f.refused++
	} else {
		f.failed++
	}
	if _, ok := f.nets[network]; ok || len(f.nets) < maxLoggedNets {
		if f.nets == nil {
			f.nets = map[string]int{}
		}
		f.nets[network]++
	} else {
		f.others++
	}
	f.mu.Unlock()
}

func (f *failureLog) interval() time.Duration {
	if f.every > 0 {
		return f.every
	}
	return failureLogEvery
}

// flush ends an interval: one line if anything was counted, and then
// another interval, or quiet (the next attempt is logged at once).
func (f *failureLog) flush() {
	f.mu.Lock()
	if f.failed+f.refused == 0 {
		f.pending = false
		f.mu.Unlock()
		return
	}
	failed, refused, log, every := f.failed, f.refused, f.log, f.interval()
	nets := summariseNets(f.nets, f.others)
	f.failed, f.refused, f.nets, f.others = 0, 0, nil, 0
	f.mu.Unlock()
	time.AfterFunc(every, f.flush)
	// Logged outside the lock: a slow console delays this goroutine only.
	log.Warn(fmt.Sprintf("%d failed and %d refused login, setup or password attempts in the last %s", failed, refused, every),
		"networks", nets)
}

// summariseNets names the busiest networks with their counts:
// "fe80::/64×990, 10.0.0.9×10 and 3 more networks (12 attempts)".
func summariseNets(nets map[string]int, others int) string {
	keys := make([]string, 0, len(nets))
	for k := range nets {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if nets[keys[i]] != nets[keys[j]] {
			return nets[keys[i]] > nets[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	rest, restNets := others, 0
	for i, k := range keys {
		if i < shownNets {
			parts = append(parts, fmt.Sprintf("%s×%d", k, nets[k]))
		} else {
			rest += nets[k]
			restNets++
		}
	}
	s := strings.Join(parts, ", ")
	switch {
	case others > 0:
		s += fmt.Sprintf(" and more networks (%d attempts)", rest)
	case restNets > 0:
		s += fmt.Sprintf(" and %d more networks (%d attempts)", restNets, rest)
	}
	return s
}

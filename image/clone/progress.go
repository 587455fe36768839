package clone

import (
	"sync"
	"time"

	"byzantium/image/clone/cloneapi"
)

// Progress is where a clone stands. The writer updates it; Snapshot may
// be called from any goroutine (a progress bar, a JSON reporter). A nil
// *Progress is ignored.
type Progress struct {
	// OnPhase, when set, is called as each phase begins (from the
	// writer's goroutine): a reporter that samples on a timer misses no
	// phase that way.
	OnPhase func()
	mu      sync.Mutex
	phase   string
	bytes   int64
	total   int64
	file    string
	since   time.Time
}

func (p *Progress) set(phase string, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.phase, p.total, p.bytes, p.file, p.since = phase, total, 0, "", time.Now()
	p.mu.Unlock()
	if p.OnPhase != nil {
		p.OnPhase()
	}
}

func (p *Progress) add(n int64) {
	if p == nil || n == 0 {
		return
	}
	p.mu.Lock()
	p.bytes += n
	p.mu.Unlock()
}

func (p *Progress) setFile(f string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.file = f
	p.mu.Unlock()
}

// Snapshot returns the current state, as a line of --progress=json
// shows it.
func (p *Progress) Snapshot() cloneapi.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := cloneapi.Event{Phase: p.phase, Bytes: p.bytes, Total: p.total, File: p.file}
	if el := time.Since(p.since).Seconds(); el > 0 && p.bytes > 0 {
		e.Rate = float64(p.bytes) / el
		e.ETA = float64(max(p.total-p.bytes, 0)) / e.Rate
	}
	return e
}

package daemon

import (
	"byzantium/runtime/nodeapi"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// LogRing keeps the last records of the daemon's log for the panel and
// the API: a fixed ring, so the memory it takes is bounded.
type LogRing struct {
	mu    sync.Mutex
	lines []nodeapi.LogLine
	next  int
	full  bool
}

// NewLogRing keeps the last n records.
func NewLogRing(n int) *LogRing { return &LogRing{lines: make([]nodeapi.LogLine, n)} }

func (r *LogRing) add(l nodeapi.LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

// Lines returns the records kept, oldest first.
func (r *LogRing) Lines() []nodeapi.LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]nodeapi.LogLine(nil), r.lines[:r.next]...)
	}
	return append(append([]nodeapi.LogLine(nil), r.lines[r.next:]...), r.lines[:r.next]...)
}

// Tee returns a logger that writes to log's handler and keeps each
// record in the ring too.
func (r *LogRing) Tee(log *slog.Logger) *slog.Logger {
	return slog.New(&ringHandler{next: log.Handler(), ring: r})
}

type ringHandler struct {
	next  slog.Handler
	ring  *LogRing
	attrs string
	group string
}

func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *ringHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelInfo {
		var b strings.Builder
		b.WriteString(rec.Message)
		b.WriteString(h.attrs)
		rec.Attrs(func(a slog.Attr) bool {
			appendAttr(&b, h.group, a)
			return true
		})
		t := rec.Time
		if t.IsZero() {
			t = time.Now()
		}
		h.ring.add(nodeapi.LogLine{Time: t.UTC(), Level: rec.Level.String(), Message: b.String()})
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	return &ringHandler{next: h.next.WithAttrs(as), ring: h.ring, attrs: h.attrs + b.String(), group: h.group}
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &ringHandler{next: h.next.WithGroup(name), ring: h.ring, attrs: h.attrs, group: h.group + name + "."}
}

package babel

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSupervisorBackoff runs a fake babeld that prints to stderr and
// exits: the supervisor reports restarting with its output, and the gaps
// between starts double.
func TestSupervisorBackoff(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "babeld")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$(date +%s.%N)\" >> "+dir+"/starts\necho 'Couldn'\\''t bind: address in use' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{
		Launch:     PlainLauncher,
		Prepare:    func() ([]string, error) { return []string{fake}, nil },
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 400 * time.Millisecond,
		Logf:       t.Logf,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, n := s.Status(); n >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	state, lastErr, starts := s.Status()
	cancel()
	<-done
	if starts < 5 {
		t.Fatalf("%d starts in 10 s", starts)
	}
	if state != StateRestarting && state != StateStarting && state != StateRunning {
		t.Errorf("state %q while crashing", state)
	}
	if !strings.Contains(lastErr, "address in use") || !strings.Contains(lastErr, "exit status 1") {
		t.Errorf("last error %q lacks the exit and stderr", lastErr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "starts"))
	var ts []float64
	for _, l := range strings.Fields(string(b)) {
		var f float64
		for i, part := range strings.SplitN(l, ".", 2) {
			var v float64
			for _, c := range part {
				v = v*10 + float64(c-'0')
			}
			if i == 1 {
				for range part {
					v /= 10
				}
			}
			f += v
		}
		ts = append(ts, f)
	}
	// Gaps: ~0.1, 0.2, 0.4, 0.4 (capped).
	for i, want := range []float64{0.1, 0.2, 0.4, 0.4} {
		if i+1 >= len(ts) {
			break
		}
		gap := ts[i+1] - ts[i]
		if gap < want*0.9 || gap > want+0.5 {
			t.Errorf("gap %d = %.2fs, want about %.1fs", i, gap, want)
		}
	}
	if st, _, _ := s.Status(); st != StateOff {
		t.Errorf("after Run: %q", st)
	}
}

func TestSupervisorFailedAndRestart(t *testing.T) {
	s := &Supervisor{
		Launch:     PlainLauncher,
		Prepare:    func() ([]string, error) { return []string{"/nonexistent/babeld"}, nil },
		MinBackoff: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	time.Sleep(200 * time.Millisecond)
	if st, e, _ := s.Status(); st != StateFailed || !strings.Contains(e, "could not start") {
		t.Errorf("missing binary: %q %q", st, e)
	}
	// A long-running process is stopped and started again by Restart.
	s2 := &Supervisor{Launch: PlainLauncher, Prepare: func() ([]string, error) { return []string{"sleep", "30"}, nil }}
	go s2.Run(ctx)
	time.Sleep(200 * time.Millisecond)
	s2.Restart()
	time.Sleep(300 * time.Millisecond)
	if st, _, n := s2.Status(); st != StateRunning || n != 2 {
		t.Errorf("after Restart: %q, %d starts", st, n)
	}
}

package babel

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Engine states, as nodeapi.Mesh.Engine shows them.
const (
	StateOff        = "off"
	StateStarting   = "starting"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateFailed     = "failed"
)

// Launcher makes the command that runs argv (argv[0] is babeld's path or
// name) without starting it: byzd wraps it in its sandbox, the simulator
// in a network namespace. The supervisor sets its output and starts it.
type Launcher func(ctx context.Context, argv []string) (*exec.Cmd, error)

// PlainLauncher runs argv as it is.
func PlainLauncher(_ context.Context, argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("babel: empty command")
	}
	return exec.Command(argv[0], argv[1:]...), nil
}

// Supervisor runs a process, restarts it when it exits with a backoff
// (MinBackoff doubling up to MaxBackoff, back to MinBackoff after a run of
// StableAfter), and says how it is doing.
type Supervisor struct {
	Launch Launcher
	// Prepare is called before every start and returns the command line:
	// it writes a fresh configuration (a new router id each time).
	Prepare func() ([]string, error)
	// Ready, when set, is called after a start; the state is "starting"
	// until it returns nil (babeld's socket answers).
	Ready func(ctx context.Context) error
	Logf  func(format string, args ...any)
	// Name names the process in log lines; "babeld" when empty (the
	// mesh manager also supervises wpa_supplicant with it).
	Name string

	MinBackoff, MaxBackoff, StableAfter time.Duration
	// StopGrace is how long a stopping process gets after SIGTERM (babeld
	// retracts its routes and removes its kernel routes) before SIGKILL.
	StopGrace time.Duration

	mu      sync.Mutex
	state   string
	lastErr string
	starts  int
	restart chan struct{}
}

// Status is the supervisor's state, the last failure and how many times
// the process was started.
func (s *Supervisor) Status() (state, lastErr string, starts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == "" {
		return StateOff, s.lastErr, s.starts
	}
	return s.state, s.lastErr, s.starts
}

func (s *Supervisor) set(state, lastErr string) {
	s.mu.Lock()
	s.state = state
	if lastErr != "" {
		s.lastErr = lastErr
	}
	s.mu.Unlock()
}

func (s *Supervisor) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

func (s *Supervisor) channel() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restart == nil {
		s.restart = make(chan struct{}, 1)
	}
	return s.restart
}

// Restart stops the running process and starts it again at once (new
// settings), without backoff.
func (s *Supervisor) Restart() {
	select {
	case s.channel() <- struct{}{}:
	default:
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Run supervises until ctx ends, then stops the process and returns.
func (s *Supervisor) Run(ctx context.Context) {
	minB := orDefault(s.MinBackoff, time.Second)
	maxB := orDefault(s.MaxBackoff, 30*time.Second)
	stable := orDefault(s.StableAfter, 30*time.Second)
	grace := orDefault(s.StopGrace, 3*time.Second)
	restart := s.channel()
	backoff := minB
	defer s.set(StateOff, "")
	for ctx.Err() == nil {
		s.set(StateStarting, "")
		started := time.Now()
		requested, err := s.runOnce(ctx, restart, grace)
		if ctx.Err() != nil {
			return
		}
		if requested {
			backoff = minB
			continue
		}
		if time.Since(started) >= stable {
			backoff = minB
		}
		state := StateRestarting
		if errors.Is(err, errStart) {
			state = StateFailed
		}
		s.set(state, err.Error())
		name := s.Name
		if name == "" {
			name = "babeld"
		}
		s.logf("%s: %v; again in %v", name, err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-restart:
			backoff = minB
		case <-time.After(backoff):
			backoff = min(backoff*2, maxB)
		}
	}
}

var errStart = errors.New("could not start")

// runOnce runs the process once; requested says a Restart ended it.
func (s *Supervisor) runOnce(ctx context.Context, restart <-chan struct{}, grace time.Duration) (requested bool, err error) {
	argv, err := s.Prepare()
	if err != nil {
		return false, fmt.Errorf("%w: %v", errStart, err)
	}
	cmd, err := s.Launch(ctx, argv)
	if err != nil {
		return false, fmt.Errorf("%w: %v", errStart, err)
	}
	tail := &tailBuffer{max: 4096}
	cmd.Stdout = tail
	cmd.Stderr = tail
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("%w: %v", errStart, err)
	}
	s.mu.Lock()
	s.starts++
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.Ready != nil {
		go func() {
			if s.Ready(runCtx) == nil && runCtx.Err() == nil {
				s.mu.Lock()
				if s.state == StateStarting {
					s.state = StateRunning
				}
				s.mu.Unlock()
			}
		}()
	} else {
		s.set(StateRunning, "")
	}
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(grace):
			cmd.Process.Kill()
			return <-done
		}
	}
	select {
	case err := <-done:
		return false, fmt.Errorf("exited: %v%s", err, tail.last())
	case <-ctx.Done():
		stop()
		return false, ctx.Err()
	case <-restart:
		stop()
		return true, nil
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// last is the last few lines of output, for the error shown to people.
func (t *tailBuffer) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	s := strings.TrimSpace(strings.Join(lines, " | "))
	if s == "" {
		return ""
	}
	if len(s) > 400 {
		s = s[len(s)-400:]
	}
	return ": " + s
}

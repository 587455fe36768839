package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"byzantium/modules/manifest"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/sandbox"
)

// svc is one declared service and its supervision.
type svc struct {
	name   string
	module *module
	decl   manifest.Service
	logs   *ring

	// Guarded by the Manager's mutex.
	enabled bool
	cancel  context.CancelFunc
	done    chan struct{}

	mu       sync.Mutex // the fields the supervising goroutine updates
	state    string
	pid      int
	restarts int
	health   string
	lastErr  string
	since    time.Time
}

func (s *svc) user() string {
	if s.decl.User != "" {
		return s.decl.User
	}
	return s.name
}

func (s *svc) set(state string, pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != state {
		s.since = time.Now()
	}
	s.state, s.pid = state, pid
	if state != "running" {
		s.health = ""
	}
}

func (s *svc) running() bool { return s.cancel != nil }

// Backoff bounds between restarts of a service that exits.
const (
	firstBackoff = time.Second
	maxBackoff   = time.Minute
	// A run this long resets the backoff: the service worked for a while.
	stableRun   = 30 * time.Second
	stopTimeout = 5 * time.Second
)

// startService starts s's supervising goroutine. The caller holds m.mu.
func (m *Manager) startService(s *svc) {
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	s.cancel, s.done = cancel, make(chan struct{})
	uid := m.uid(s.user())
	m.saveState()
	// The layers are fixed while the service runs: a module cannot be
	// deactivated under a running service (Deactivate stops it first).
	lower, err := m.lowerDirs(s.module)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(s.done)
		if err != nil {
			s.mu.Lock()
			s.lastErr = err.Error()
			s.mu.Unlock()
			s.set("failed", 0)
			<-ctx.Done()
			s.set("stopped", 0)
			return
		}
		m.supervise(ctx, s, uid, lower)
	}()
}

// stopService stops s and waits for it. The caller holds m.mu; the
// supervising goroutine never takes it, so this cannot deadlock.
func (m *Manager) stopService(s *svc) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel, s.done = nil, nil
}

// supervise runs s until ctx ends, restarting it with a growing backoff
// when it exits.
func (m *Manager) supervise(ctx context.Context, s *svc, uid uint32, lower []string) {
	log := m.Log.With("service", s.name)
	backoff := firstBackoff
	for {
		s.set("starting", 0)
		started := time.Now()
		err := m.runOnce(ctx, s, uid, lower, log)
		if ctx.Err() != nil {
			s.set("stopped", 0)
			log.Info("service stopped")
			return
		}
		if time.Since(started) >= stableRun {
			backoff = firstBackoff
		}
		s.mu.Lock()
		s.lastErr = err.Error()
		s.restarts++
		s.mu.Unlock()
		s.set("backoff", 0)
		log.Warn("service exited; restarting later", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			s.set("stopped", 0)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// runOnce prepares the service's root, runs the program confined until
// it exits or ctx ends, and takes the root down again.
func (m *Manager) runOnce(ctx context.Context, s *svc, uid uint32, lower []string, log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) error {
	root, cleanup, err := m.prepareRoot(s, uid, lower)
	if err != nil {
		return fmt.Errorf("preparing its root: %w", err)
	}
	defer cleanup()
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dataDir(s), "USER=" + s.user()}
	keys := make([]string, 0, len(s.decl.Environment))
	for k := range s.decl.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+s.decl.Environment[k])
	}
	cmd, err := sandbox.Command(m.Self, sandbox.Spec{Root: root, Argv: s.decl.Command, Env: env, UID: uid, GID: uid,
		Caps: s.decl.Capabilities, Privileged: s.decl.Privileged, Hostname: m.Node(), OpenFiles: uint64(s.decl.Limits.OpenFiles), Processes: uint64(s.decl.Limits.Processes)})
	if err != nil {
		return err
	}
	cgroup := m.cgroups()
	if cgroup {
		fd, remove, err := m.serviceCgroup(s)
		if err != nil {
			return err
		}
		defer remove()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting: %w", err)
	}
	s.set("running", cmd.Process.Pid)
	if cgroup {
		go m.tightenPids(s, cmd.Process.Pid)
	}
	log.Info("service started", "pid", cmd.Process.Pid, "uid", uid)
	var lastLine string
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			lastLine = sc.Text()
			s.logs.add(lastLine)
		}
		io.Copy(io.Discard, out)
	}()
	hctx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	go m.checkHealth(hctx, s)

	exited := make(chan error, 1)
	go func() {
		<-copied
		exited <- cmd.Wait()
	}()
	select {
	case err := <-exited:
		if lastLine != "" {
			return fmt.Errorf("%v; its last line: %s", exitText(err), lastLine)
		}
		return errors.New(exitText(err))
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			log.Warn("service did not stop on SIGTERM: killing it")
			cmd.Process.Kill()
			<-exited
		}
		return ctx.Err()
	}
}

func exitText(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exited with status 0"
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	default:
		return err.Error()
	}
}

// checkHealth connects to the service's health address every few
// seconds while it runs.
func (m *Manager) checkHealth(ctx context.Context, s *svc) {
	addr, expect := healthAddr(s.decl)
	if addr == "" {
		return
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		h := "ok"
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			h = "failing"
		} else {
			if expect != "" {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				if !strings.HasPrefix(line, expect) {
					h = "failing"
				}
			}
			c.Close()
		}
		s.mu.Lock()
		if s.state == "running" {
			s.health = h
		}
		s.mu.Unlock()
	}
}

// healthAddr is the declared check, or a connect to the first TCP port.
func healthAddr(d manifest.Service) (addr, expect string) {
	if d.Health != nil && d.Health.TCP != "" {
		return d.Health.TCP, d.Health.Expect
	}
	for _, p := range d.Ports {
		if n, ok := strings.CutSuffix(p, "/tcp"); ok {
			return "127.0.0.1:" + n, ""
		}
	}
	return "", ""
}

// ring keeps a service's last lines of output.
type ring struct {
	mu  sync.Mutex
	buf []nodeapi.LogLine
	max int
}

func newRing(n int) *ring { return &ring{max: n} }

func (r *ring) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == r.max {
		r.buf = append(r.buf[:0], r.buf[1:]...)
	}
	r.buf = append(r.buf, nodeapi.LogLine{Time: time.Now().UTC(), Level: "INFO", Message: line})
}

func (r *ring) lines() []nodeapi.LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]nodeapi.LogLine{}, r.buf...)
}

package main

// The harness for the CLI's interrupt tests: it runs the real byz binary
// (built by TestMain), delivers a signal at chosen points of a long
// command, and checks that the command left nothing behind: no new entry
// in the folders it writes to, what was there before unchanged (earlier
// outputs included), its inputs unchanged, and its TMPDIR empty. Add a
// case for a new long-running command by describing it as a sigCase; see
// signal_test.go for the module and build commands.

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sigCase is one command to interrupt, at each of its points.
type sigCase struct {
	Args []string
	Dir  string // working directory (default: a new temporary folder)
	// Watch are the folders the command writes in: after an interrupt
	// they must hold exactly what they held before, unchanged.
	Watch []string
	// Inputs are files or folders the command reads: unchanged.
	Inputs []string
	Env    []string
	Points []sigPoint
	// Check, when set, runs after each point for what Watch cannot say
	// (a cache whose entries a run may replace with complete ones).
	Check func(t *testing.T)
	// Timeout bounds each run (default 5 minutes).
	Timeout time.Duration
}

// sigPoint is a moment to deliver a signal at.
type sigPoint struct {
	Name   string
	Signal syscall.Signal // default SIGINT
	// When is polled every few milliseconds while the command runs; the
	// signal goes once it returns true (nil: at once). The command must
	// not end before that, or the point was never reached: a failure.
	When func(p *sigProgress) bool
	// After is how long to wait once When holds, to land inside the step.
	After time.Duration
	// Args are added to the case's for this point (--no-cache, say).
	Args []string
}

// sigProgress is what When sees of the running command.
type sigProgress struct {
	Stderr string
	watch  []string
	before map[string]snap
}

// NewHidden reports a new hidden entry (a temporary file or folder) in a
// watched folder holding at least min bytes of files.
func (p *sigProgress) NewHidden(min int64) bool {
	for _, w := range p.watch {
		ents, _ := os.ReadDir(w)
		for _, e := range ents {
			path := filepath.Join(w, e.Name())
			if _, old := p.before[path]; old || !strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if treeBytes(path) >= min {
				return true
			}
		}
	}
	return false
}

// NewFiles reports at least n new files anywhere under the watched folders.
func (p *sigProgress) NewFiles(n int) bool {
	count := 0
	for _, w := range p.watch {
		filepath.WalkDir(w, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if _, old := p.before[path]; !old {
					count++
				}
			}
			return nil
		})
	}
	return count >= n
}

// Says reports whether the command has written s on stderr.
func (p *sigProgress) Says(s string) bool { return strings.Contains(p.Stderr, s) }

func treeBytes(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// snap is what is compared of one path: kind, mode, size, inode, time and,
// for small files, content.
type snap string

func snapshot(t *testing.T, roots ...string) map[string]snap {
	t.Helper()
	m := map[string]snap{}
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			s := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && !d.IsDir() {
				s += fmt.Sprintf(" ino %d mtime %d", st.Ino, fi.ModTime().UnixNano())
			}
			if d.Type().IsRegular() && fi.Size() <= 1<<20 {
				if f, err := os.Open(path); err == nil {
					h := sha256.New()
					io.Copy(h, f)
					f.Close()
					s += fmt.Sprintf(" %x", h.Sum(nil))
				}
			}
			m[path] = snap(s)
			return nil
		})
	}
	return m
}

func compareSnaps(t *testing.T, what string, before, after map[string]snap) {
	t.Helper()
	n := 0
	for p, s := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s: %s is gone", what, p)
			n++
		} else if a != s {
			t.Errorf("%s: %s changed: %s → %s", what, p, s, a)
			n++
		}
		if n > 10 {
			return
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s was left behind", what, p)
			n++
		}
		if n > 10 {
			return
		}
	}
}

// runSigCase runs c once per point, each as a subtest.
func runSigCase(t *testing.T, c sigCase) {
	t.Helper()
	for _, pt := range c.Points {
		t.Run(pt.Name, func(t *testing.T) { runSigPoint(t, c, pt) })
	}
}

func runSigPoint(t *testing.T, c sigCase, pt sigPoint) {
	sig := pt.Signal
	if sig == 0 {
		sig = syscall.SIGINT
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	tmp := t.TempDir()
	dir := c.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	watched := snapshot(t, c.Watch...)
	inputs := snapshot(t, c.Inputs...)

	args := append(append([]string(nil), c.Args...), pt.Args...)
	cmd := exec.Command(byzBin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "TMPDIR="+tmp, "SOURCE_DATE_EPOCH=1700000000"), c.Env...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	prog := &sigProgress{watch: c.Watch, before: watched}
	deadline := time.After(timeout)
	var err error
	sent := false
wait:
	for {
		prog.Stderr = stderr.String()
		if pt.When == nil || pt.When(prog) {
			if pt.After > 0 {
				select {
				case err = <-exited:
					break wait
				case <-time.After(pt.After):
				}
			}
			cmd.Process.Signal(sig)
			sent = true
			break
		}
		select {
		case err = <-exited:
			break wait
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			t.Fatalf("byz %v: point %q not reached in %v\n%s", args, pt.Name, timeout, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if !sent {
		t.Fatalf("byz %v ended (%v) before point %q: make its input bigger\n%s", args, err, pt.Name, stderr.String())
	}
	select {
	case err = <-exited:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("byz %v did not end after %v\n%s", args, sig, stderr.String())
	}
	// 128+N when byz handled the signal; killed by it when it came before
	// byz installed its handler (at once), which leaves nothing either.
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Exited() && ws.ExitStatus() == 128+int(sig):
		if !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("exit %d without saying it was interrupted: %s", ws.ExitStatus(), stderr.String())
		}
	case ws.Signaled() && ws.Signal() == sig && pt.When == nil:
	default:
		t.Errorf("byz %v after %v at %q: %v, want exit %d\n%s", args, sig, pt.Name, err, 128+int(sig), stderr.String())
	}
	compareSnaps(t, "output folders", watched, snapshot(t, c.Watch...))
	compareSnaps(t, "inputs", inputs, snapshot(t, c.Inputs...))
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
	if c.Check != nil {
		c.Check(t)
	}
}

// syncBuffer is a strings.Builder the command and the poller share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

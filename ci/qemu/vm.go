package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrExited reports that QEMU ended before the console showed what
// Expect waited for.
var ErrExited = errors.New("qemu: exited")

// ErrPanicked is returned by Expect once the guest kernel has panicked.
var ErrPanicked = errors.New("qemu: the guest kernel panicked")

// ErrFailLine is returned by Expect once the console has shown a line
// Config.FailOn names.
var ErrFailLine = errors.New("qemu: the console showed a failure line")

// TailLines is how many console lines errors carry.
const TailLines = 40

// Config adds to Options what concerns the running process.
type Config struct {
	Options
	// SerialLog, when set, receives a copy of the console output.
	SerialLog string
	// Console, when set, also receives the console output as it comes
	// (byz run qemu passes os.Stdout).
	Console io.Writer
	// FailOn lists console text that makes the boot a failure: once a
	// line contains one, Expect returns ErrFailLine at once, as after a
	// kernel panic, and StartT's cleanup fails the test even if nothing
	// was expected after it. A test that gave the node a persistence
	// store passes "persistence is OFF": a node that fell back to RAM
	// would otherwise pass it with a warning.
	FailOn []string
}

// VM is a running QEMU.
type VM struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser // the serial console's input
	tmp     string
	stderr  bytes.Buffer
	done    chan struct{} // closed when QEMU has exited and the console is drained
	waitErr error

	mu      sync.Mutex
	lines   []string
	next    int           // Expect searches lines from here
	changed chan struct{} // closed and replaced on every new line
	logFile *os.File
	// panicked is set once a line says "Kernel panic - not syncing".
	panicked bool
	// failOn is Config.FailOn; failLine the first line that matched.
	failOn   []string
	failLine string
	once     sync.Once
}

// Start runs QEMU. The caller must Kill the VM (StartT arranges it).
func Start(cfg Config) (*VM, error) {
	tmp, err := os.MkdirTemp("", "byz-qemu-")
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	vm := &VM{tmp: tmp, done: make(chan struct{}), changed: make(chan struct{}), failOn: cfg.FailOn}
	if err := vm.start(cfg); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return vm, nil
}

func (vm *VM) start(cfg Config) error {
	vars := filepath.Join(vm.tmp, "OVMF_VARS.fd")
	if cfg.UEFI || cfg.SecureBoot {
		if err := copyFile(vars, cfg.varsTemplate()); err != nil {
			return fmt.Errorf("qemu: copying the UEFI variable store: %w (install ovmf)", err)
		}
	}
	args, err := cfg.Args(vars)
	if err != nil {
		return err
	}
	bin := cfg.Binary
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	vm.cmd = exec.Command(bin, args...)
	vm.cmd.Stderr = &vm.stderr
	stdout, err := vm.cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	if vm.stdin, err = vm.cmd.StdinPipe(); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	var out io.Reader = stdout
	if cfg.SerialLog != "" {
		if vm.logFile, err = os.Create(cfg.SerialLog); err != nil {
			return fmt.Errorf("qemu: serial log: %w", err)
		}
		out = io.TeeReader(out, vm.logFile)
	}
	if cfg.Console != nil {
		out = io.TeeReader(out, cfg.Console)
	}
	if err := vm.cmd.Start(); err != nil {
		if vm.logFile != nil {
			vm.logFile.Close()
		}
		return fmt.Errorf("qemu: starting %s: %w", bin, err)
	}
	go vm.scan(out)
	return nil
}

// Type sends text to the first serial port, as if typed on its terminal
// (a rescue shell, a passphrase prompt). A newline is Enter.
func (vm *VM) Type(text string) error {
	if _, err := io.WriteString(vm.stdin, text); err != nil {
		return fmt.Errorf("qemu: typing on the console: %w", err)
	}
	return nil
}

// scan splits the console into lines until QEMU closes it, then waits for
// the process.
func (vm *VM) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		vm.addLine(strings.TrimRight(sc.Text(), "\r"))
	}
	io.Copy(io.Discard, r) // an over-long line must not block QEMU
	vm.waitErr = vm.cmd.Wait()
	if vm.logFile != nil {
		vm.logFile.Close()
	}
	close(vm.done)
}

// addLine records a console line and wakes Expect.
func (vm *VM) addLine(line string) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.lines = append(vm.lines, line)
	if strings.Contains(line, "Kernel panic - not syncing") {
		vm.panicked = true
	}
	for _, f := range vm.failOn {
		if vm.failLine == "" && strings.Contains(line, f) {
			vm.failLine = line
		}
	}
	close(vm.changed)
	vm.changed = make(chan struct{})
}

// FailLine returns the first console line that contained a Config.FailOn
// text, or "".
func (vm *VM) FailLine() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.failLine
}

// Expect waits for a console line containing text, searching from the
// line after the previous match, and returns that line. On timeout (ctx)
// or QEMU exiting it returns an error carrying the last console lines.
func (vm *VM) Expect(ctx context.Context, text string) (string, error) {
	for {
		if fl := vm.FailLine(); fl != "" {
			return "", fmt.Errorf("%w (%q) before the console showed %q:\n%s", ErrFailLine, fl, text, vm.report())
		}
		line, ok, changed := vm.find(text)
		if ok {
			return line, nil
		}
		if vm.hasPanicked() {
			// A panicked kernel says nothing more: fail now, not at the
			// timeout.
			return "", fmt.Errorf("%w before the console showed %q:\n%s", ErrPanicked, text, vm.report())
		}
		select {
		case <-changed:
		case <-vm.done:
			// The last lines may have arrived with the exit.
			if line, ok, _ := vm.find(text); ok {
				return line, nil
			}
			return "", fmt.Errorf("%w (%v) before the console showed %q:\n%s", ErrExited, vm.waitErr, text, vm.report())
		case <-ctx.Done():
			return "", fmt.Errorf("qemu: waiting for %q: %w; the console said:\n%s", text, ctx.Err(), vm.report())
		}
	}
}

// find looks for text in the lines not searched yet; changed is closed
// when another line arrives.
func (vm *VM) find(text string) (line string, ok bool, changed chan struct{}) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for i := vm.next; i < len(vm.lines); i++ {
		if strings.Contains(vm.lines[i], text) {
			vm.next = i + 1
			return vm.lines[i], true, nil
		}
	}
	vm.next = len(vm.lines)
	return "", false, vm.changed
}

// Wait waits for QEMU to exit by itself (a guest poweroff) and returns
// its exit error; on timeout it returns an error with the last lines.
func (vm *VM) Wait(ctx context.Context) error {
	select {
	case <-vm.done:
		if vm.waitErr != nil {
			return fmt.Errorf("qemu: %w; the console said:\n%s", vm.waitErr, vm.report())
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("qemu: waiting for the VM to exit: %w; the console said:\n%s", ctx.Err(), vm.report())
	}
}

func (vm *VM) hasPanicked() bool {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.panicked
}

// Tail returns the last n console lines.
func (vm *VM) Tail(n int) []string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if len(vm.lines) < n {
		n = len(vm.lines)
	}
	return append([]string(nil), vm.lines[len(vm.lines)-n:]...)
}

func (vm *VM) report() string {
	s := "  " + strings.Join(vm.Tail(TailLines), "\n  ")
	if e := strings.TrimSpace(vm.stderr.String()); e != "" && vm.exited() {
		s += "\nqemu's stderr:\n" + e
	}
	return s
}

func (vm *VM) exited() bool {
	select {
	case <-vm.done:
		return true
	default:
		return false
	}
}

// Kill stops QEMU if it still runs, waits for it and removes its
// temporary files. It may be called more than once.
func (vm *VM) Kill() {
	vm.once.Do(func() {
		if !vm.exited() {
			vm.cmd.Process.Kill()
		}
		<-vm.done
		os.RemoveAll(vm.tmp)
	})
}

// Cleanuper is the part of testing.TB that StartT needs; taking it as an
// interface keeps the testing package out of byz.
type Cleanuper interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// StartT starts a VM for a test and kills it when the test ends; the
// test fails then if the console showed a Config.FailOn line.
func StartT(t Cleanuper, cfg Config) *VM {
	t.Helper()
	vm, err := Start(cfg)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		vm.Kill()
		if fl := vm.FailLine(); fl != "" {
			t.Errorf("%v: %q", ErrFailLine, fl)
		}
	})
	return vm
}

func copyFile(dst, src string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

// Monitor sends one command to QEMU's human monitor (Options.Monitor)
// and returns what it answered, as "set_link ab off" or "info network".
func (vm *VM) Monitor(command string) (string, error) {
	if strings.ContainsAny(command, "\r\n") {
		return "", fmt.Errorf("qemu: monitor command %q: one line", command)
	}
	c, err := net.DialTimeout("unix", filepath.Join(vm.tmp, monitorSocket), 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("qemu: the monitor (was the VM started with Monitor?): %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	// The monitor greets with a banner and a prompt; the answer to the
	// command ends at the next prompt.
	const prompt = "(qemu) "
	if _, err := readUntil(c, prompt); err != nil {
		return "", fmt.Errorf("qemu: the monitor's greeting: %w", err)
	}
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		return "", fmt.Errorf("qemu: monitor: %w", err)
	}
	out, err := readUntil(c, prompt)
	if err != nil {
		return "", fmt.Errorf("qemu: monitor: %s: %w", command, err)
	}
	// The monitor echoes the command with terminal escapes; keep what
	// follows the echoed line.
	if _, rest, ok := strings.Cut(out, "\n"); ok {
		out = rest
	}
	return strings.TrimSpace(strings.TrimSuffix(out, prompt)), nil
}

// readUntil reads r until what it read ends with end, at most 1 MiB.
func readUntil(r io.Reader, end string) (string, error) {
	var b []byte
	buf := make([]byte, 4096)
	for len(b) < 1<<20 {
		n, err := r.Read(buf)
		b = append(b, buf[:n]...)
		if strings.HasSuffix(string(b), end) {
			return string(b), nil
		}
		if err != nil {
			return string(b), err
		}
	}
	return string(b), errors.New("no prompt in 1 MiB")
}

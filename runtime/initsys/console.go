package initsys

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Logf is a printf-shaped log function.
type Logf func(format string, args ...any)

// Console is where the init's messages go: every active console device
// (/sys/class/tty/console/active: "tty0 ttyS0" for console=tty0
// console=ttyS0) and the kernel log. /dev/console alone is not enough:
// it is only the last console= device, so with a serial console the
// screen would stay blank. The kernel log copy is written at KERN_DEBUG so
// the kernel does not print every line a second time on the same consoles
// at the default log level; with `debug` on the command line it does.
//
// Until Open succeeds (the devices appear when /dev and /sys are mounted),
// lines are kept and written out by Open.
type Console struct {
	root    string
	mu      sync.Mutex
	ttys    []*os.File
	kmsg    *os.File
	pending []string
}

// NewConsole returns a Console for the devices under root ("" means "/").
func NewConsole(root string) *Console { return &Console{root: rootDir(root)} }

// Open opens the active consoles, falling back to /dev/console, and the
// kernel log, then writes what was logged before. Once a console is
// open, Open does nothing.
func (c *Console) Open() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttys != nil {
		return nil
	}
	names := []string{"console"}
	if b, err := os.ReadFile(filepath.Join(c.root, "sys/class/tty/console/active")); err == nil && len(strings.Fields(string(b))) > 0 {
		names = strings.Fields(string(b))
	}
	var firstErr error
	for _, n := range names {
		f, err := os.OpenFile(filepath.Join(c.root, "dev", n), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			firstErr = fmt.Errorf("opening console %s: %w", n, err)
			continue
		}
		c.ttys = append(c.ttys, f)
	}
	if f, err := os.OpenFile(filepath.Join(c.root, "dev/kmsg"), os.O_WRONLY|os.O_APPEND, 0); err == nil {
		c.kmsg = f
	}
	for _, line := range c.pending {
		c.write(line)
	}
	c.pending = nil
	if len(c.ttys) == 0 {
		return firstErr
	}
	return nil
}

// Logf writes one "byz-init: …" line.
func (c *Console) Logf(format string, args ...any) {
	line := "byz-init: " + strings.TrimSuffix(fmt.Sprintf(format, args...), "\n")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttys == nil {
		c.pending = append(c.pending, line)
		return
	}
	c.write(line)
}

func (c *Console) write(line string) {
	for _, t := range c.ttys {
		t.WriteString(line + "\n")
	}
	if c.kmsg != nil {
		// One write is one kernel log record; "<7>" is KERN_DEBUG.
		c.kmsg.WriteString("<7>" + line + "\n")
	}
}

func rootDir(root string) string {
	if root == "" {
		return "/"
	}
	return root
}

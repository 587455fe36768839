// Package sandbox starts a program confined the way byzd runs services:
// in its own mount, PID, IPC and UTS namespaces, chrooted into a root
// prepared for it, with a private /tmp, /run and /dev, as its own uid and
// gid, with no capabilities but the ones it declares (in the bounding,
// permitted, effective and ambient sets alike), no_new_privs, and
// resource limits.
//
// The confinement is done by a second stage: the caller runs its own
// binary again (Command) with the namespaces set by clone, and that
// process (Main) mounts, drops privileges on one locked OS thread and
// execs the program from that thread, so that what execve sees is exactly
// that thread's credentials. A Go program cannot do this between fork and
// exec, and syscall.SysProcAttr has no no_new_privs or bounding set.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"byzantium/modules/manifest"
)

// Arg is the first argument that makes a binary run Main: byzd's main and
// the tests' TestMain check for it before anything else.
const Arg = "byz-sandbox-exec"

// specEnv carries the Spec to the second stage; the program's own
// environment is Spec.Env only.
const specEnv = "BYZ_SANDBOX_SPEC"

// Spec is one confined program.
type Spec struct {
	// Root is the prepared root folder, as the caller sees it: usually an
	// overlay of the service's layers with its data folder bound in.
	Root string `json:"root"`
	// Argv is the program (an absolute path inside Root) and its
	// arguments; Env its whole environment; Dir its working folder
	// inside Root ("" means /).
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	// UID and GID it runs as: never 0.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// Caps are the capabilities it keeps, "CAP_NET_BIND_SERVICE" style;
	// the privileged ones (manifest.Capabilities) need Privileged.
	Caps       []string `json:"caps"`
	Privileged bool     `json:"privileged"`
	// Hostname in its UTS namespace; "" keeps the node's.
	Hostname string `json:"hostname"`
	// Limits: open files and processes (RLIMIT_NOFILE, RLIMIT_NPROC, per
	// uid, which is the service's own); 0 means the defaults below.
	OpenFiles uint64 `json:"open_files"`
	Processes uint64 `json:"processes"`
	// TmpSize bounds the private /tmp and /run (tmpfs size=); "" is 64m.
	TmpSize string `json:"tmp_size"`
}

// Defaults for Spec's limits.
const (
	DefaultOpenFiles = 1024
	DefaultProcesses = 256
)

var sizePattern = regexp.MustCompile(`^[0-9]+[kmg]?$`)

// ErrPrivileged refuses a privileged capability for a program not
// declared privileged.
var ErrPrivileged = errors.New("a privileged capability, and the program is not declared privileged")

func (s *Spec) check() error {
	switch {
	case s.UID == 0 || s.GID == 0:
		return errors.New("sandbox: a program never runs as root (uid or gid 0)")
	case len(s.Argv) == 0 || !strings.HasPrefix(s.Argv[0], "/"):
		return fmt.Errorf("sandbox: the program %q must be an absolute path inside the root", s.Argv)
	case !strings.HasPrefix(s.Root, "/"):
		return fmt.Errorf("sandbox: root %q must be absolute", s.Root)
	case s.TmpSize != "" && !sizePattern.MatchString(s.TmpSize):
		return fmt.Errorf("sandbox: tmp size %q", s.TmpSize)
	}
	for _, c := range s.Caps {
		if _, ok := capByName[c]; !ok {
			return fmt.Errorf("sandbox: unknown capability %q", c)
		}
		// The manifest refuses these already; the sandbox holds the line
		// for any other caller.
		if why, ok := manifest.Privileged(c); ok && !s.Privileged {
			return fmt.Errorf("sandbox: %w: %s: %s", ErrPrivileged, c, why)
		}
	}
	return nil
}

// Command returns the command that runs spec confined: self (the
// caller's own binary, os.Executable or /proc/self/exe) with Arg, in new
// namespaces. The caller sets its Stdout and Stderr and starts it; the
// process it starts becomes the program (same PID).
func Command(self string, spec Spec) (*exec.Cmd, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, Arg)
	cmd.Env = []string{specEnv + "=" + string(b)}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
		Setsid:     true,
	}
	return cmd, nil
}

// Main is the second stage: it confines this process as the spec in its
// environment says and execs the program. It never returns; on failure
// it writes the reason to standard error and exits 126 (127 when the
// program is missing), as shells do.
func Main() {
	var spec Spec
	if err := json.Unmarshal([]byte(os.Getenv(specEnv)), &spec); err != nil {
		fail(126, fmt.Errorf("sandbox: the spec: %w", err))
	}
	if err := spec.check(); err != nil {
		fail(126, err)
	}
	err := confineAndExec(&spec)
	code := 126
	if errors.Is(err, unix.ENOENT) {
		code = 127
	}
	fail(code, err)
}

func fail(code int, err error) {
	fmt.Fprintf(os.Stderr, "byz-sandbox: %v\n", err)
	os.Exit(code)
}

// Package initsys is byz-init, the PID 1 of the initramfs: it mounts the
// kernel filesystems, loads the kernel modules the builder put in, reads
// the boot parameters (Boot), finds the media, stacks its modules under
// one overlayfs with rootcopy on top (Stack) and switches root into the
// base's init (SwitchRoot). Every host path is joined to Config.RootDir
// so the steps can run against a temporary tree in tests.
package initsys

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"byzantium/runtime/coldplug"

	"golang.org/x/sys/unix"
)

// ReadyLine starts the line printed once the init has done its work,
// just before it execs the system's init ("ready: switching root to
// /sbin/init"), or, with byz.test=poweroff, once its modules are loaded:
// the boot tests wait for it on the console.
const ReadyLine = "ready"

// Config is what Boot works on. The zero value boots the real machine,
// logging nowhere: Main passes a Console.
type Config struct {
	// RootDir prefixes every path; "" means "/".
	RootDir string
	// Console receives the log and is opened once /dev and /sys are up.
	// Logf, when set, is used instead of Console.Logf.
	Console *Console
	Logf    Logf
	// Mounts is the mount table; nil means BaseMounts.
	Mounts []Mount
	// Mount, Unmount and LoadModule default to mount(2), umount2(2) and
	// finit_module(2).
	Mount      MountFunc
	Unmount    func(target string, flags int) error
	LoadModule LoadFunc
	// AttachLoop sets up a read-only loop device on a module file and
	// returns it open (it detaches when closed unless mounted) with its
	// path; nil means the kernel's /dev/loop-control.
	AttachLoop func(file string) (io.Closer, string, error)
	// ModuleDir is the new root's module directory the network coldplug
	// reads, relative to the new root; "" means lib/modules/<uname -r>.
	ModuleDir string
}

// withDefaults resolves the zero fields, in one place for every step.
func (cfg Config) withDefaults() Config {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
		if cfg.Console != nil {
			cfg.Logf = cfg.Console.Logf
		}
	}
	if cfg.Mounts == nil {
		cfg.Mounts = BaseMounts
	}
	if cfg.Mount == nil {
		cfg.Mount = unix.Mount
	}
	if cfg.Unmount == nil {
		cfg.Unmount = unix.Unmount
	}
	if cfg.LoadModule == nil {
		cfg.LoadModule = coldplug.FinitModule
	}
	return cfg
}

// State is what Boot found and did.
type State struct {
	Cmdline        Cmdline
	Loaded, Failed []string
	// NoDevice names the modules that declined to load on this machine
	// (ENODEV: a CPU-specific crypto driver on a CPU without the feature).
	NoDevice []string
}

// FatalError is a failure that stops the boot, with what to try.
type FatalError struct {
	Err  error
	Hint string
}

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Boot runs the init's steps in order. Only an essential mount failure is
// fatal (a *FatalError); everything else is logged and skipped.
func Boot(cfg Config) (*State, error) {
	cfg = cfg.withDefaults()
	root := rootDir(cfg.RootDir)
	logf := cfg.Logf

	if err := mountAll(root, cfg.Mounts, cfg.Mount, logf); err != nil {
		return nil, &FatalError{Err: err, Hint: "the kernel lacks proc, sysfs or devtmpfs (CONFIG_DEVTMPFS), or init is not PID 1; boot a Debian kernel built for Byzantium"}
	}
	if cfg.Console != nil {
		if err := cfg.Console.Open(); err != nil {
			logf("warning: %v", err)
		}
	}
	st := &State{}
	b, err := os.ReadFile(filepath.Join(root, "proc/cmdline"))
	if err != nil {
		logf("warning: reading the kernel command line: %v (using defaults)", err)
	}
	st.Cmdline, err = ParseCmdline(string(b))
	if err != nil {
		logf("warning: boot parameters: %v (ignored)", err)
	}
	ml := loadModules(root, cfg.LoadModule, logf)
	st.Loaded, st.Failed, st.NoDevice = ml.loaded, ml.failed, ml.noDevice
	logf("loaded %d kernel modules, %d failed, %d not for this machine", len(st.Loaded), len(st.Failed), len(st.NoDevice))
	if st.Cmdline.Debug {
		logf("modules not for this machine (no such device): %s", strings.Join(st.NoDevice, " "))
		logf("cmdline: %s", strings.TrimSpace(string(b)))
		mods, err := loadedModules(root)
		if err != nil {
			logf("warning: listing modules: %v", err)
		}
		logf("modules loaded: %s", strings.Join(mods, " "))
	}
	return st, nil
}

// String renders the hint the way the console shows it.
func (e *FatalError) String() string {
	return fmt.Sprintf("FATAL: %v\nwhat to try: %s", e.Err, e.Hint)
}

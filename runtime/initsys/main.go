package initsys

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"byzantium/runtime/coldplug"

	"golang.org/x/sys/unix"
)

// Main is the whole of byz-init's main. It never returns: PID 1 exiting
// panics the kernel, so a failure ends in a rescue shell or a hint
// repeated on the console.
func Main() {
	con := NewConsole("/")
	go reap()
	cfg := Config{Console: con}
	st, err := Boot(cfg)
	if err == nil {
		// From here on a Go panic, and the rescue shell, reach the console.
		redirectStdio(con)
		if st.Cmdline.Test() == "poweroff" {
			// The bare-initramfs boot test: no media, just prove the
			// kernel runs the init and the init loads its modules.
			con.Logf(ReadyLine)
			err = powerOff(con)
		} else {
			var nr *NewRoot
			if nr, err = Stack(cfg, st); err == nil {
				// The network drivers come from the new root's
				// 000-kernel.xzm before its init runs (busybox init
				// starts no udev, and byzd's DHCP needs them); byzd
				// loads the drivers for the other devices once it
				// serves, so they do not delay the node's first answer.
				netColdplug(cfg, nr.Dir, st.Cmdline.Debug)
				err = SwitchRoot(nr, con.Logf) // returns only on failure
			}
		}
	}
	rescue(con, err)
}

func powerOff(con *Console) error {
	con.Logf("byz.test=poweroff: powering off")
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		return &FatalError{Err: err, Hint: "power the machine off by hand"}
	}
	return nil
}

// rescue reports err and then offers /bin/sh, again and again, or, with
// no shell in the initramfs, repeats the hint every 30 seconds. Only an
// image whose spec opens the console (console: {shell: root}) has a
// shell here: it is root's, and asks for no password.
func rescue(con *Console, err error) {
	hint := "boot the menu's debug entry for more detail; this image has no rescue shell (a spec with console: {shell: root} adds one)"
	var fe *FatalError
	if errors.As(err, &fe) {
		hint = fe.Hint
	}
	_ = con.Open() // a failed boot may not have got that far; nothing better to do if it fails
	con.Logf("FATAL: %v", err)
	con.Logf("what to try: %s", hint)
	redirectStdio(con)
	for {
		if _, statErr := os.Stat("/bin/sh"); statErr == nil {
			con.Logf("starting a rescue shell (/bin/sh); exit it to get another")
			cmd := exec.Command("/bin/sh")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			// Wait may lose the race to the reaper and report ECHILD;
			// either way the shell is gone and another is started.
			_ = cmd.Run()
			time.Sleep(time.Second)
			continue
		}
		time.Sleep(30 * time.Second)
		con.Logf("FATAL: %v; what to try: %s (no rescue shell in this image: its console setting gives none)", err, hint)
	}
}

// redirectStdio points fds 0-2 at /dev/console (the kernel could not: the
// initramfs has no device nodes, see overlays.DevNullPlaceholder).
func redirectStdio(con *Console) {
	f, err := os.OpenFile(filepath.Join("/dev", "console"), os.O_RDWR, 0)
	if err != nil {
		con.Logf("warning: opening /dev/console: %v", err)
		return
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			con.Logf("warning: dup3 /dev/console to fd %d: %v", fd, err)
		}
	}
	if f.Fd() > 2 {
		f.Close()
	}
}

// reap collects every child that exits: PID 1 inherits orphans, and
// zombies would pile up otherwise.
func reap() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	for range ch {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

// netColdplug loads the drivers of the machine's network devices from the
// new root's module tree.
func netColdplug(cfg Config, newRoot string, debug bool) {
	cfg = cfg.withDefaults()
	modDir := cfg.ModuleDir
	if modDir == "" {
		var err error
		if modDir, err = coldplug.ModDir(newRoot); err != nil {
			cfg.Logf("warning: %v", err)
			return
		}
	} else {
		modDir = filepath.Join(newRoot, modDir)
	}
	cp := coldplug.Run(coldplug.Options{Root: cfg.RootDir, ModDir: modDir, Load: cfg.LoadModule, Logf: cfg.Logf, Only: coldplug.Network})
	cfg.Logf("coldplug: network drivers: %d modules loaded, %d failed; byzd loads %d more for the other devices",
		len(cp.Loaded), len(cp.Failed), cp.Skipped)
	if debug {
		cfg.Logf("coldplug: loaded %s; no device for %s", strings.Join(cp.Loaded, " "), strings.Join(cp.NoDevice, " "))
	}
}

package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// capByName maps capability names to numbers (linux/capability.h).
var capByName = map[string]uintptr{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"CAP_FOWNER": unix.CAP_FOWNER, "CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
	"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE,
	"CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST,
	"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK,
	"CAP_IPC_OWNER": unix.CAP_IPC_OWNER, "CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE, "CAP_SYS_PACCT": unix.CAP_SYS_PACCT,
	"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_BOOT": unix.CAP_SYS_BOOT, "CAP_SYS_NICE": unix.CAP_SYS_NICE,
	"CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_SYS_TIME": unix.CAP_SYS_TIME, "CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG,
	"CAP_MKNOD": unix.CAP_MKNOD, "CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "CAP_SETFCAP": unix.CAP_SETFCAP, "CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE,
	"CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN, "CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ, "CAP_PERFMON": unix.CAP_PERFMON,
	"CAP_BPF": unix.CAP_BPF, "CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// devices are bound from the node's /dev into the private one.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// confineAndExec does the second stage's work. Everything that must hold
// across execve (credentials, capability sets, no_new_privs) is per
// thread in Linux, so it all happens on this one locked thread, which
// then execs.
func confineAndExec(s *Spec) error {
	runtime.LockOSThread()
	// Mounts made here stay in this namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("sandbox: making mounts private: %w", err)
	}
	if err := mountRoot(s); err != nil {
		return err
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("sandbox: host name: %w", err)
		}
	}
	if err := unix.Chdir(s.Root); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("sandbox: chroot %s: %w", s.Root, err)
	}
	dir := s.Dir
	if dir == "" {
		dir = "/"
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("sandbox: working folder %s: %w", dir, err)
	}
	if err := limits(s); err != nil {
		return err
	}
	if err := dropPrivileges(s); err != nil {
		return err
	}
	// The program must exist and be executable by the service's uid;
	// execve says so precisely, with the path in the message.
	err := unix.Exec(s.Argv[0], s.Argv, s.Env)
	return fmt.Errorf("sandbox: exec %s: %w", s.Argv[0], err)
}

// mountRoot gives the root its own /proc (of the new PID namespace: it
// sees only its own processes), /dev (a few devices), /tmp and /run.
func mountRoot(s *Spec) error {
	size := s.TmpSize
	if size == "" {
		size = "64m"
	}
	in := func(p string) string { return filepath.Join(s.Root, p) }
	type m struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}
	// No device node made on these works (nodev: the few devices are
	// binds of the node's own, each a mount of its own), and no
	// set-user-ID bit either. /dev and /proc hold no programs (noexec);
	// /tmp and /run may: programs map code from there (libffi's
	// trampolines, JITs), and noexec would gain nothing while the data
	// folder, which the service writes, can hold programs.
	ms := []m{
		{"proc", in("proc"), "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"tmpfs", in("dev"), "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=0755,size=64k"},
		{"tmpfs", in("tmp"), "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777,size=" + size},
		{"tmpfs", in("run"), "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755,size=" + size},
	}
	for _, x := range ms {
		if err := os.MkdirAll(x.dst, 0o755); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		if err := unix.Mount(x.src, x.dst, x.fstype, x.flags, x.data); err != nil {
			return fmt.Errorf("sandbox: mount %s on %s: %w", x.fstype, x.dst, err)
		}
	}
	for _, d := range devices {
		dst := in("dev/" + d)
		if f, err := os.Create(dst); err == nil {
			f.Close()
		}
		if err := unix.Mount("/dev/"+d, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("sandbox: /dev/%s: %w", d, err)
		}
	}
	for _, l := range [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}} {
		os.Symlink(l[0], in("dev/"+l[1]))
	}
	return nil
}

func limits(s *Spec) error {
	files, procs := s.OpenFiles, s.Processes
	if files == 0 {
		files = DefaultOpenFiles
	}
	if procs == 0 {
		procs = DefaultProcesses
	}
	for _, l := range []struct {
		res  int
		v    uint64
		name string
	}{{unix.RLIMIT_NOFILE, files, "open files"}, {unix.RLIMIT_NPROC, procs, "processes"}, {unix.RLIMIT_CORE, 0, "core size"}} {
		var cur unix.Rlimit
		if err := unix.Getrlimit(l.res, &cur); err != nil {
			return fmt.Errorf("sandbox: %s limit: %w", l.name, err)
		}
		v := l.v
		// Lowering needs no privilege; never ask for more than the
		// node allows (raising needs CAP_SYS_RESOURCE).
		if cur.Max != unix.RLIM_INFINITY && v > cur.Max {
			v = cur.Max
		}
		if err := unix.Setrlimit(l.res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("sandbox: %s limit %d: %w", l.name, v, err)
		}
	}
	return nil
}

// dropPrivileges leaves this thread as s.UID/s.GID with only s.Caps,
// which survive execve as ambient capabilities, and no_new_privs set.
func dropPrivileges(s *Spec) error {
	var keep uint64
	for _, c := range s.Caps {
		keep |= 1 << capByName[c]
	}
	// The bounding set first, while CAP_SETPCAP is still held: nothing
	// outside keep can ever come back, even through a file capability.
	for c := uintptr(0); c <= lastCap(); c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			return fmt.Errorf("sandbox: dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: keepcaps: %w", err)
	}
	// Raw, per-thread system calls: Go's syscall.Setuid would change every
	// thread (or refuse with cgo); this thread is the one that execs.
	gid := s.GID
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 1, uintptr(unsafe.Pointer(&gid)), 0); e != 0 {
		return fmt.Errorf("sandbox: setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(s.GID), uintptr(s.GID), uintptr(s.GID)); e != 0 {
		return fmt.Errorf("sandbox: setresgid %d: %w", s.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(s.UID), uintptr(s.UID), uintptr(s.UID)); e != 0 {
		return fmt.Errorf("sandbox: setresuid %d: %w", s.UID, e)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep), Inheritable: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32), Inheritable: uint32(keep >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("sandbox: capset: %w", err)
	}
	for _, c := range s.Caps {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, capByName[c], 0, 0); err != nil {
			return fmt.Errorf("sandbox: ambient %s: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: keepcaps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: no_new_privs: %w", err)
	}
	return nil
}

// lastCap is the kernel's highest capability number.
func lastCap() uintptr {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	var n uintptr
	fmt.Sscan(strings.TrimSpace(string(b)), &n)
	if n == 0 {
		return unix.CAP_LAST_CAP
	}
	return n
}

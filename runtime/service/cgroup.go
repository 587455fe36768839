package service

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Each service runs in a cgroup v2 group of its own under
// /sys/fs/cgroup/byz-services, with memory.max and pids.max from its
// declared limits; a process is born into it (clone3's CLONE_INTO_CGROUP),
// so not even its first instructions escape the limits.
const (
	cgroupMount  = "sys/fs/cgroup"
	cgroupParent = "byz-services"
	// defaultMemoryMB bounds a service that declares no memory limit.
	defaultMemoryMB = 256
)

// cgroups reports whether cgroup v2 can be used, mounting it on a node
// where nothing has (busybox init does not).
func (m *Manager) cgroups() bool {
	m.cgOnce.Do(func() {
		dir := filepath.Join("/", cgroupMount)
		var sfs unix.Statfs_t
		if unix.Statfs(dir, &sfs) == nil && sfs.Type != unix.CGROUP2_SUPER_MAGIC && !isMountPoint(dir) {
			if err := unix.Mount("cgroup2", dir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
				m.Log.Warn("no cgroup v2: services run without memory and process-count limits", "err", err)
				return
			}
		}
		if unix.Statfs(dir, &sfs) != nil || sfs.Type != unix.CGROUP2_SUPER_MAGIC {
			m.Log.Warn("no cgroup v2 at /sys/fs/cgroup: services run without memory and process-count limits (open files and per-user processes are still limited)")
			return
		}
		parent := filepath.Join(dir, cgroupParent)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			m.Log.Warn("cgroup v2", "err", err)
			return
		}
		for _, d := range []string{dir, parent} {
			if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory +pids"), 0o644); err != nil {
				m.Log.Warn("cgroup v2: enabling the memory and pids controllers", "dir", d, "err", err)
				return
			}
		}
		m.cgOK = true
	})
	return m.cgOK
}

// startupPids is the room the confinement stage needs in pids.max: it is
// byzd's binary, a Go program with a few threads, until it execs the
// service. byzd lowers pids.max to the declared value once it has
// (tightenPids).
const startupPids = 32

// serviceCgroup makes (or empties) s's group, sets its limits and returns
// an open descriptor of it for clone3, and a function that removes it.
func (m *Manager) serviceCgroup(s *svc) (int, func(), error) {
	dir := filepath.Join("/", cgroupMount, cgroupParent, s.name)
	killCgroup(dir)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return -1, nil, fmt.Errorf("cgroup: %w", err)
	}
	mem := s.decl.Limits.MemoryMB
	if mem <= 0 {
		mem = defaultMemoryMB
	}
	for file, v := range map[string]string{"memory.max": strconv.Itoa(mem << 20), "pids.max": strconv.Itoa(servicePids(s) + startupPids)} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil {
			return -1, nil, fmt.Errorf("cgroup %s: %w", file, err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("cgroup: %w", err)
	}
	return fd, func() {
		unix.Close(fd)
		killCgroup(dir)
	}, nil
}

// killCgroup kills whatever is left in a service's group (a daemon that
// forked away, or processes of a byzd that died) and removes the group.
func killCgroup(dir string) {
	if _, err := os.Stat(dir); err != nil {
		return
	}
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644)
	for i := 0; i < 50; i++ {
		if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 20e6}, nil)
	}
}

func servicePids(s *svc) int {
	if s.decl.Limits.Processes > 0 {
		return s.decl.Limits.Processes
	}
	return 256
}

// tightenPids waits for the confinement stage (pid) to exec the service,
// which leaves it with one thread, then sets pids.max to the declared
// number of processes.
func (m *Manager) tightenPids(s *svc, pid int) {
	self, _ := os.Readlink("/proc/self/exe")
	exe := filepath.Join("/proc", strconv.Itoa(pid), "exe")
	for i := 0; i < 500; i++ {
		if target, err := os.Readlink(exe); err != nil || target != self {
			break // exec'd (or gone)
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
	}
	dir := filepath.Join("/", cgroupMount, cgroupParent, s.name)
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(servicePids(s))), 0o644); err != nil {
		m.Log.Warn("cgroup pids.max", "service", s.name, "err", err)
	}
}

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
//
// CPU and I/O are shared by weight: byzd moves itself into
// /sys/fs/cgroup/byzd, a sibling of byz-services with ten times its
// cpu.weight and io.weight, so all the services together, however busy,
// cannot starve the daemon that serves the panel and stops them; inside
// byz-services each service weighs the same, so one that forks cannot
// crowd out the others. Weights cost nothing while there is no
// contention. io.weight acts only where the kernel's I/O cost model is on
// for the device (io.cost.qos) and is inert otherwise.
const (
	cgroupMount  = "sys/fs/cgroup"
	cgroupParent = "byz-services"
	cgroupDaemon = "byzd"
	// defaultMemoryMB bounds a service that declares no memory limit.
	defaultMemoryMB = 256
	// The weights (1 to 10000, the kernel's default 100).
	daemonWeight   = 1000
	servicesWeight = 100
	serviceWeight  = 100
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
		m.cgWeights = m.weights(dir, parent)
	})
	return m.cgOK
}

// weights enables the cpu and io controllers for the services, gives
// byz-services its weights and moves byzd into a group of its own with
// higher ones; it returns the controllers enabled. Best effort: without
// them services still run, with their memory and process limits.
func (m *Manager) weights(dir, parent string) []string {
	var on []string
	for _, c := range []string{"cpu", "io"} {
		var err error
		for _, d := range []string{dir, parent} {
			if err = os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+"+c), 0o644); err != nil {
				break
			}
		}
		if err != nil {
			m.Log.Warn("cgroup v2: no "+c+" controller: services are not weighted below byzd for it", "err", err)
			continue
		}
		on = append(on, c)
	}
	writeWeights(m.Log, parent, on, servicesWeight)
	// Only the manager of the running node moves its process: a test's
	// manager (a root folder of its own) must not move the test binary.
	if filepath.Clean(m.Root) != "/" || len(on) == 0 {
		return on
	}
	own := filepath.Join(dir, cgroupDaemon)
	if err := os.Mkdir(own, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		m.Log.Warn("cgroup v2: byzd's own group", "err", err)
		return on
	}
	writeWeights(m.Log, own, on, daemonWeight)
	if err := os.WriteFile(filepath.Join(own, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		m.Log.Warn("cgroup v2: moving byzd into its own group", "err", err)
	}
	return on
}

// writeWeights sets cpu.weight and io.weight (for the controllers on) of
// the group dir.
func writeWeights(log interface{ Warn(string, ...any) }, dir string, on []string, w int) {
	for _, c := range on {
		if err := os.WriteFile(filepath.Join(dir, c+".weight"), []byte(strconv.Itoa(w)), 0o644); err != nil {
			log.Warn("cgroup v2: "+c+".weight", "dir", dir, "err", err)
		}
	}
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
	writeWeights(m.Log, dir, m.cgWeights, serviceWeight)
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

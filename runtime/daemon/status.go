package daemon

import (
	"bufio"
	"byzantium/runtime/nodeapi"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"byzantium/overlays"

	"golang.org/x/sys/unix"
)

// readStatus gathers the node's status under root ("/" on a node; /proc
// and the interfaces are always the running kernel's).
func readStatus(root string) nodeapi.Status {
	var s nodeapi.Status
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseFloat(f[0], 64)
			s.UptimeSeconds = int64(v)
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		for i := 0; i < 3 && i < len(f); i++ {
			s.Load[i], _ = strconv.ParseFloat(f[i], 64)
		}
	}
	s.Memory = readMemory()
	for _, st := range []struct{ name, path string }{{"root", "/"}, {"media", overlays.MediaDir}} {
		var fs unix.Statfs_t
		p := filepath.Join(root, st.path)
		if st.name == "media" && !isMountPoint(p) {
			continue
		}
		if unix.Statfs(p, &fs) == nil {
			s.Storage = append(s.Storage, nodeapi.Storage{Name: st.name, Path: "/" + strings.TrimPrefix(st.path, "/"),
				SizeBytes: fs.Blocks * uint64(fs.Bsize), FreeBytes: fs.Bavail * uint64(fs.Bsize)})
		}
	}
	s.Persistence = ReadPersistence(root)
	s.Interfaces = readInterfaces()
	return s
}

func readMemory() nodeapi.Memory {
	var m nodeapi.Memory
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "MemTotal":
			m.TotalBytes = n << 10
		case "MemAvailable":
			m.AvailableBytes = n << 10
		}
	}
	return m
}

func readInterfaces() []nodeapi.Interface {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := []nodeapi.Interface{}
	for _, i := range ifs {
		it := nodeapi.Interface{Name: i.Name, Up: i.Flags&net.FlagUp != 0, MAC: i.HardwareAddr.String(), Addresses: []string{}}
		if addrs, err := i.Addrs(); err == nil {
			for _, a := range addrs {
				it.Addresses = append(it.Addresses, a.String())
			}
		}
		out = append(out, it)
	}
	return out
}

// isMountPoint reports whether p is mounted over (its device differs from
// its parent's).
func isMountPoint(p string) bool {
	var st, parent unix.Stat_t
	return unix.Stat(p, &st) == nil && unix.Stat(filepath.Dir(p), &parent) == nil && st.Dev != parent.Dev
}

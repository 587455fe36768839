package daemon

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"byzantium/overlays"

	"golang.org/x/sys/unix"
)

// Status is the node at a glance: GET /api/v1/status and the panel's
// first page.
type Status struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	NodeID  string `json:"node_id,omitempty"`
	// TLSFingerprint is the panel certificate's SHA-256, as the console
	// shows it, for byz node --fingerprint.
	TLSFingerprint string        `json:"tls_fingerprint,omitempty"`
	UptimeSeconds  int64         `json:"uptime_seconds"` // of the kernel
	Load           [3]float64    `json:"load"`
	Memory         Memory        `json:"memory"`
	Storage        []Storage     `json:"storage"`
	Persistence    *Persistence  `json:"persistence,omitempty"`
	Interfaces     []Interface   `json:"interfaces"`
	Modules        []string      `json:"modules"`
	Services       []ServiceInfo `json:"services"`
}

// Memory in bytes, from /proc/meminfo.
type Memory struct {
	TotalBytes     uint64 `json:"total_bytes"`
	AvailableBytes uint64 `json:"available_bytes"`
}

// Storage is one mounted file system that matters to the node.
type Storage struct {
	Name      string `json:"name"` // "root", "media"
	Path      string `json:"path"`
	SizeBytes uint64 `json:"size_bytes"`
	FreeBytes uint64 `json:"free_bytes"`
}

// Interface is a network interface and its addresses.
type Interface struct {
	Name      string   `json:"name"`
	Up        bool     `json:"up"`
	MAC       string   `json:"mac,omitempty"`
	Addresses []string `json:"addresses"`
}

// readStatus gathers the node's status under root ("/" on a node; /proc
// and the interfaces are always the running kernel's).
func readStatus(root string) Status {
	var s Status
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
			s.Storage = append(s.Storage, Storage{Name: st.name, Path: "/" + strings.TrimPrefix(st.path, "/"),
				SizeBytes: fs.Blocks * uint64(fs.Bsize), FreeBytes: fs.Bavail * uint64(fs.Bsize)})
		}
	}
	s.Persistence = ReadPersistence(root)
	s.Interfaces = readInterfaces()
	return s
}

func readMemory() Memory {
	var m Memory
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

func readInterfaces() []Interface {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := []Interface{}
	for _, i := range ifs {
		it := Interface{Name: i.Name, Up: i.Flags&net.FlagUp != 0, MAC: i.HardwareAddr.String(), Addresses: []string{}}
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

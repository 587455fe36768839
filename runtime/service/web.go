package service

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"byzantium/modules/manifest"
	"byzantium/overlays"
)

// WebApp is a service that declares a web app, as byzd's front reaches
// it. The paths are as byzd sees them.
type WebApp struct {
	Service, Module string
	Web             manifest.Web
	// Socket is the app's socket under the service's data folder on the
	// node ("" when the app listens on Web.Addr): the folder is the
	// service's alone, so nothing else on the node can have put a socket
	// there.
	Socket string
	// Root is where the service's root is mounted while it runs: a
	// FastCGI app's static files are read from there.
	Root string
}

// WebApps lists the services that declare a web app, whether their
// module is active or not, sorted by service name.
func (m *Manager) WebApps() []WebApp {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []WebApp
	for _, s := range m.sortedServices() {
		if s.decl.Web == nil {
			continue
		}
		a := WebApp{Service: s.name, Module: s.module.name, Web: *s.decl.Web,
			Root: filepath.Join(m.Root, overlays.ServicesDir, s.name, "root")}
		if a.Web.Name == "" {
			a.Web.Name = s.name
		}
		if a.Web.Title == "" {
			a.Web.Title = s.name
		}
		if a.Web.Socket != "" {
			// The manifest keeps the socket inside the data folder.
			rel := strings.TrimPrefix(a.Web.Socket, s.decl.DataDir()+"/")
			a.Socket = filepath.Join(m.hostData(s), rel)
		}
		out = append(out, a)
	}
	return out
}

// State returns a service's state ("stopped", "starting", "running",
// "backoff", "failed"; "" for no such service) and whether it is
// enabled.
func (m *Manager) State(name string) (state string, enabled bool) {
	m.mu.Lock()
	s := m.services[name]
	if s != nil {
		enabled = s.enabled
	}
	m.mu.Unlock()
	if s == nil {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, enabled
}

// MemoryBytes is the memory a service's processes use now (its cgroup's
// memory.current), or -1 when it is not running or unknown.
func (m *Manager) MemoryBytes(name string) int64 {
	b, err := os.ReadFile(filepath.Join("/", cgroupMount, cgroupParent, name, "memory.current"))
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

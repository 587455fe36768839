package service

import (
	"byzantium/runtime/nodeapi"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"byzantium/overlays"

	"golang.org/x/sys/unix"
)

// Manager owns the modules and services of a running node.
type Manager struct {
	// Root is the running root ("/" on a node).
	Root string
	// StateDir keeps what survives reboots when persistence is on: the
	// active modules, the enabled services, the service users' ids, and
	// each service's data folder.
	StateDir string
	// Self is the binary that runs sandbox.Main (byzd itself).
	Self string
	// Node gives the node's name for config templates and host names,
	// Lang the node's language for config templates ("en" if nil).
	Node func() string
	Lang func() string
	Log  *slog.Logger

	mu       sync.Mutex
	modules  map[string]*module
	services map[string]*svc
	state    savedState
	ctx      context.Context
	wg       sync.WaitGroup

	cgOnce    sync.Once
	cgOK      bool
	cgWeights []string // the controllers weighted: "cpu", "io"
}

// savedState is StateDir/services.json.
type savedState struct {
	Active  []string          `json:"active"`
	Enabled []string          `json:"enabled"`
	Users   map[string]uint32 `json:"users"`
}

// firstUID is where service users' ids start: above the ids Debian hands
// out to people and below nobody.
const firstUID = 61000

// Start scans the media, restores the active modules and starts the
// enabled services; the services run until ctx ends (Wait waits for them
// to stop).
func (m *Manager) Start(ctx context.Context) error {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	if m.Node == nil {
		m.Node = func() string { return "byzantium" }
	}
	if m.Lang == nil {
		m.Lang = func() string { return "en" }
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ctx = ctx
	if err := m.readState(); err != nil {
		return err
	}
	if err := m.scan(); err != nil {
		return err
	}
	m.killStrays()
	m.services = map[string]*svc{}
	for _, mod := range m.sorted() {
		m.addServices(mod)
	}
	for _, name := range m.state.Active {
		mod := m.modules[name]
		if mod == nil {
			m.Log.Warn("a module activated before is not on the media any more", "module", name)
			continue
		}
		if _, err := m.activate(mod); err != nil {
			m.Log.Warn("could not activate a module again", "module", name, "err", err)
		}
	}
	for _, name := range m.state.Enabled {
		s := m.services[name]
		if s == nil || !m.available(s) {
			m.Log.Warn("an enabled service is not available", "service", name)
			continue
		}
		s.enabled = true
		m.startService(s)
	}
	return nil
}

// Wait waits for every service to have stopped (after Start's ctx ends).
func (m *Manager) Wait() { m.wg.Wait() }

func (m *Manager) addServices(mod *module) {
	for _, d := range mod.man.Services {
		if old, dup := m.services[d.Name]; dup {
			m.Log.Warn("two services with one name: keeping the first", "service", d.Name, "kept", old.module.name, "ignored", mod.name)
			continue
		}
		m.services[d.Name] = &svc{name: d.Name, module: mod, decl: d, state: "stopped", logs: newRing(200)}
	}
}

func (m *Manager) readState() error {
	b, err := os.ReadFile(filepath.Join(m.StateDir, "services.json"))
	if errors.Is(err, os.ErrNotExist) {
		m.state = savedState{Users: map[string]uint32{}}
		return nil
	}
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if err := json.Unmarshal(b, &m.state); err != nil {
		return fmt.Errorf("service: %s: %w", filepath.Join(m.StateDir, "services.json"), err)
	}
	if m.state.Users == nil {
		m.state.Users = map[string]uint32{}
	}
	return nil
}

// saveState writes services.json whole (temporary file, rename).
func (m *Manager) saveState() {
	m.state.Active, m.state.Enabled = nil, nil
	for _, mod := range m.sorted() {
		if mod.active {
			m.state.Active = append(m.state.Active, mod.name)
		}
	}
	for _, s := range m.sortedServices() {
		if s.enabled {
			m.state.Enabled = append(m.state.Enabled, s.name)
		}
	}
	b, _ := json.MarshalIndent(m.state, "", "  ")
	path := filepath.Join(m.StateDir, "services.json")
	tmp := path + ".tmp"
	err := os.MkdirAll(m.StateDir, 0o700)
	if err == nil {
		err = os.WriteFile(tmp, append(b, '\n'), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		m.Log.Error("saving the services' state", "err", err)
	}
}

// uid returns the user's id, allocating one the first time.
func (m *Manager) uid(user string) uint32 {
	if id, ok := m.state.Users[user]; ok {
		return id
	}
	id := uint32(firstUID)
	for _, v := range m.state.Users {
		if v >= id {
			id = v + 1
		}
	}
	m.state.Users[user] = id
	return id
}

// killStrays kills processes left running as a service user by a byzd
// that died: they would hold the services' ports.
func (m *Manager) killStrays() {
	if len(m.state.Users) == 0 {
		return
	}
	ids := map[uint32]bool{}
	for _, id := range m.state.Users {
		ids[id] = true
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", e.Name()), &st) == nil && ids[st.Uid] {
			m.Log.Warn("killing a service process left by an earlier byzd", "pid", pid, "uid", st.Uid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Modules lists the modules, by media file.
func (m *Manager) Modules() []nodeapi.ModuleInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.nextBoot()
	out := []nodeapi.ModuleInfo{}
	for _, mod := range m.sorted() {
		mi := nodeapi.ModuleInfo{Name: mod.name, Version: mod.man.Version, Folder: mod.folder, File: mod.file, Loaded: mod.loaded, Active: mod.active,
			Depends: nonNil(mod.man.Depends), Provides: nonNil(mod.man.Provides), Services: []string{}, RequiredBy: nonNil(m.requiredBy(mod)),
			NextBoot: mod.folder != overlays.FolderOptional || next[mod.name]}
		for _, s := range mod.man.Services {
			mi.Services = append(mi.Services, s.Name)
		}
		out = append(out, mi)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Activate makes an optional module and its dependencies available to
// the services that run from them.
func (m *Manager) Activate(name string) (nodeapi.ModuleChange, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mod := m.modules[name]
	if mod == nil {
		return nodeapi.ModuleChange{}, fmt.Errorf("%w module %q: see GET /api/v1/modules for the media's modules", ErrUnknown, name)
	}
	if len(mod.man.Services) == 0 && !mod.loaded {
		return nodeapi.ModuleChange{}, fmt.Errorf("%w: %s has no services, and overlayfs cannot add a module to the running root: mark it to load at the next boot instead", ErrRefused, name)
	}
	ch, err := m.activate(mod)
	if err == nil && len(ch.Activated) > 0 {
		m.Log.Info("modules activated", "modules", strings.Join(ch.Activated, ","))
		m.saveState()
	}
	return ch, err
}

func (m *Manager) activate(mod *module) (nodeapi.ModuleChange, error) {
	var ch nodeapi.ModuleChange
	deps, err := m.closure(mod)
	if err != nil {
		return ch, err
	}
	for _, d := range deps {
		if d.loaded || d.active {
			continue
		}
		if d.layer == "" {
			if err := m.mountModule(d, ""); err != nil {
				return ch, err
			}
		}
		d.active = true
		ch.Activated = append(ch.Activated, d.name)
	}
	return ch, nil
}

// Deactivate stops the services of an active module and unmounts it;
// modules that need it are refused (a *ConflictError) unless cascade.
func (m *Manager) Deactivate(name string, cascade bool) (nodeapi.ModuleChange, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ch nodeapi.ModuleChange
	mod := m.modules[name]
	if mod == nil {
		return ch, fmt.Errorf("%w module %q", ErrUnknown, name)
	}
	if mod.loaded {
		return ch, fmt.Errorf("%w: %s was stacked at boot and cannot leave the running root: use noload=%s at the next boot", ErrRefused, name, name)
	}
	if !mod.active {
		return ch, nil
	}
	need := m.requiredBy(mod)
	if len(need) > 0 && !cascade {
		return ch, &ConflictError{Module: name, RequiredBy: need}
	}
	// Dependents first: each module goes before what it needs.
	remaining := append(need, name)
	for len(remaining) > 0 {
		i := slices.IndexFunc(remaining, func(n string) bool {
			for _, r := range remaining {
				if r != n && m.needs(m.modules[r], m.modules[n]) {
					return false
				}
			}
			return true
		})
		if i < 0 {
			i = 0 // a cycle: closure refuses those at activation
		}
		n := remaining[i]
		remaining = slices.Delete(remaining, i, i+1)
		x := m.modules[n]
		for _, s := range m.sortedServices() {
			if s.module == x && (s.enabled || s.running()) {
				s.enabled = false
				m.stopService(s)
				ch.Stopped = append(ch.Stopped, s.name)
			}
		}
		if err := m.unmountModule(x); err != nil {
			return ch, err
		}
		x.active = false
		ch.Deactivated = append(ch.Deactivated, n)
	}
	m.Log.Info("modules deactivated", "modules", strings.Join(ch.Deactivated, ","), "stopped", strings.Join(ch.Stopped, ","))
	m.saveState()
	return ch, nil
}

// nextBoot reads the media's load list.
func (m *Manager) nextBoot() map[string]bool {
	out := map[string]bool{}
	src := m.mediaSource()
	if src == "" {
		return out
	}
	b, _ := os.ReadFile(filepath.Join(src, overlays.LoadList))
	for _, name := range overlays.ParseLoadList(b) {
		out[name] = true
	}
	return out
}

// SetNextBoot marks an optional module to be stacked at the next boot
// (or not), in the media's byzantium/load list, which byz-init reads.
func (m *Manager) SetNextBoot(name string, load bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mod := m.modules[name]
	if mod == nil {
		return fmt.Errorf("%w module %q", ErrUnknown, name)
	}
	if mod.folder != overlays.FolderOptional {
		return fmt.Errorf("%w: %s is in byzantium/%s and is always stacked", ErrRefused, name, mod.folder)
	}
	media := filepath.Join(m.Root, overlays.MediaDir)
	if !isMountPoint(media) {
		return fmt.Errorf("%w: the boot media is not mounted (copy2ram?): boot with load=%s instead", ErrRefused, name)
	}
	next := m.nextBoot()
	if next[name] == load {
		return nil
	}
	next[name] = load
	var names []string
	for n, on := range next {
		if on {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	body := "# Modules byz-init stacks from byzantium/optional at boot (byz node / the panel write this).\n" + strings.Join(names, "\n") + "\n"
	var sfs unix.Statfs_t
	if err := unix.Statfs(media, &sfs); err != nil {
		return err
	}
	if sfs.Type == unix.ISOFS_SUPER_MAGIC {
		return fmt.Errorf("%w: the boot media is a CD: boot with load=%s instead", ErrRefused, name)
	}
	if sfs.Flags&unix.ST_RDONLY != 0 {
		if err := unix.Mount("", media, "", unix.MS_REMOUNT, ""); err != nil {
			return fmt.Errorf("making the media writable: %w", err)
		}
		defer unix.Mount("", media, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	path := filepath.Join(media, overlays.LoadList)
	if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	unix.Sync()
	m.Log.Info("next boot", "module", name, "load", load)
	return nil
}

func (m *Manager) sortedServices() []*svc {
	out := make([]*svc, 0, len(m.services))
	for _, s := range m.services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (m *Manager) available(s *svc) bool { return s.module.loaded || s.module.active }

// Services lists the services.
func (m *Manager) Services() []nodeapi.ServiceInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []nodeapi.ServiceInfo{}
	for _, s := range m.sortedServices() {
		out = append(out, m.info(s))
	}
	return out
}

func (m *Manager) info(s *svc) nodeapi.ServiceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	si := nodeapi.ServiceInfo{Name: s.name, Module: s.module.name, Description: s.decl.Description, Available: m.available(s), Enabled: s.enabled,
		State: s.state, PID: s.pid, Restarts: s.restarts, Health: s.health, Ports: nonNil(s.decl.Ports), LastError: s.lastErr,
		Privileged: s.decl.Privileged, Capabilities: nonNil(s.decl.Capabilities)}
	if id, ok := m.state.Users[s.user()]; ok {
		si.UID = int(id)
	}
	if !s.since.IsZero() {
		si.Since = s.since.UTC().Format(time.RFC3339)
	}
	return si
}

// Enable starts a service (and the services it depends on) and keeps it
// running across reboots.
func (m *Manager) Enable(name string) (nodeapi.ServiceInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.services[name]
	if s == nil {
		return nodeapi.ServiceInfo{}, fmt.Errorf("%w service %q: see GET /api/v1/services", ErrUnknown, name)
	}
	order, err := m.serviceClosure(s)
	if err != nil {
		return nodeapi.ServiceInfo{}, err
	}
	for _, x := range order {
		if !m.available(x) {
			return nodeapi.ServiceInfo{}, fmt.Errorf("%w: %s comes with module %s, which is not active: activate it first", ErrRefused, x.name, x.module.name)
		}
	}
	for _, x := range order {
		if !x.enabled {
			x.enabled = true
			m.Log.Info("service enabled", "service", x.name)
		}
		if !x.running() {
			m.startService(x)
		}
	}
	m.saveState()
	return m.info(s), nil
}

// Disable stops a service and keeps it off; a service other enabled
// services depend on is refused.
func (m *Manager) Disable(name string) (nodeapi.ServiceInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.services[name]
	if s == nil {
		return nodeapi.ServiceInfo{}, fmt.Errorf("%w service %q", ErrUnknown, name)
	}
	var need []string
	for _, x := range m.sortedServices() {
		if x.enabled && x != s && slices.Contains(x.decl.Depends, name) {
			need = append(need, x.name)
		}
	}
	if len(need) > 0 {
		return nodeapi.ServiceInfo{}, fmt.Errorf("%w: %s is needed by %s: disable those first", ErrRefused, name, strings.Join(need, ", "))
	}
	s.enabled = false
	m.stopService(s)
	m.Log.Info("service disabled", "service", name)
	m.saveState()
	return m.info(s), nil
}

// Restart stops and starts an enabled service.
func (m *Manager) Restart(name string) (nodeapi.ServiceInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.services[name]
	if s == nil {
		return nodeapi.ServiceInfo{}, fmt.Errorf("%w service %q", ErrUnknown, name)
	}
	if !s.enabled {
		return nodeapi.ServiceInfo{}, fmt.Errorf("%w: %s is not enabled: enable it instead", ErrRefused, name)
	}
	m.stopService(s)
	m.startService(s)
	m.Log.Info("service restarted", "service", name)
	return m.info(s), nil
}

// Logs returns a service's recent output.
func (m *Manager) Logs(name string) ([]nodeapi.LogLine, error) {
	m.mu.Lock()
	s := m.services[name]
	m.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("%w service %q", ErrUnknown, name)
	}
	return s.logs.lines(), nil
}

// serviceClosure is s's service dependencies, dependencies first.
func (m *Manager) serviceClosure(s *svc) ([]*svc, error) {
	var out []*svc
	state := map[*svc]int{}
	var visit func(x *svc, path []string) error
	visit = func(x *svc, path []string) error {
		switch state[x] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("%w: a service dependency cycle: %s", ErrRefused, strings.Join(append(path, x.name), " → "))
		}
		state[x] = 1
		for _, d := range x.decl.Depends {
			dx := m.services[d]
			if dx == nil {
				return fmt.Errorf("%w: %s depends on service %s, which no module declares", ErrRefused, x.name, d)
			}
			if err := visit(dx, append(path, x.name)); err != nil {
				return err
			}
		}
		state[x] = 2
		out = append(out, x)
		return nil
	}
	return out, visit(s, nil)
}

// needs reports whether a depends on b, directly or not.
func (m *Manager) needs(a, b *module) bool {
	deps, err := m.closure(a)
	if err != nil {
		return false
	}
	return slices.Contains(deps[:len(deps)-1], b)
}

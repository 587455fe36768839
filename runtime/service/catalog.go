// Package service is byzd's module and service manager: it knows every
// module on the boot media with its manifest, activates optional modules
// at runtime with their dependencies (mounting them for the services
// that run from them, since overlayfs cannot add a layer to the mounted
// root), and supervises the services modules declare, each confined by
// runtime/sandbox in a root of its own: the base, its module and its
// data folder.
package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"byzantium/modules/manifest"
	"byzantium/overlays"
	"byzantium/runtime/loopdev"

	"golang.org/x/sys/unix"
)

// module is one module of the media (or one byz-init stacked).
type module struct {
	name     string
	file     string // media-relative, "byzantium/optional/050-ngircd.xzm"
	folder   string
	man      *manifest.Manifest
	loaded   bool   // stacked at boot
	active   bool   // activated at runtime
	layer    string // where it is mounted, under root ("" if not)
	mountedB bool   // mounted by us (and so unmounted by us)
}

// ErrUnknown is returned for a module or service name nobody has.
var ErrUnknown = errors.New("service: unknown")

// ErrRefused is returned for a change that cannot be made; the message
// says why and what to do.
var ErrRefused = errors.New("service: refused")

// ConflictError refuses a deactivation that other modules need.
type ConflictError struct {
	Module     string
	RequiredBy []string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s is needed by %s: deactivate those too (cascade) or leave it", e.Module, strings.Join(e.RequiredBy, ", "))
}

// scan lists the media's modules and reads their manifests: those stacked
// at boot from their layer, the others by mounting them read-only.
func (m *Manager) scan() error {
	var boot []overlays.Layer
	if b, err := os.ReadFile(filepath.Join(m.Root, overlays.ModulesJSON)); err == nil {
		if err := json.Unmarshal(b, &boot); err != nil {
			return fmt.Errorf("service: %s: %w", overlays.ModulesJSON, err)
		}
	}
	byFile := map[string]overlays.Layer{}
	for _, l := range boot {
		byFile[l.File] = l
	}
	m.modules = map[string]*module{}
	add := func(mod *module) {
		if old, dup := m.modules[mod.name]; dup {
			m.Log.Warn("two modules with one name: keeping the first", "name", mod.name, "kept", old.file, "ignored", mod.file)
			return
		}
		m.modules[mod.name] = mod
	}
	seen := map[string]bool{}
	if src := m.mediaSource(); src != "" {
		for _, folder := range overlays.Folders() {
			files, _ := overlays.List(os.DirFS(src), folder)
			for _, file := range files {
				seen[file] = true
				mod := &module{file: file, folder: folder}
				if l, ok := byFile[file]; ok {
					mod.loaded, mod.layer, mod.name = true, strings.TrimPrefix(l.Layer, "/"), l.Name
				}
				if err := m.readManifest(mod, filepath.Join(src, file)); err != nil {
					m.Log.Warn("skipping a module", "file", file, "err", err)
					continue
				}
				add(mod)
			}
		}
	}
	for _, l := range boot {
		if !seen[l.File] { // the media is gone (copy2ram of a subset)
			mod := &module{file: l.File, folder: strings.Split(l.File+"//", "/")[1], loaded: true, layer: strings.TrimPrefix(l.Layer, "/"), name: l.Name}
			if err := m.readManifest(mod, ""); err != nil {
				m.Log.Warn("skipping a module", "file", l.File, "err", err)
				continue
			}
			add(mod)
		}
	}
	return nil
}

// mediaSource is the folder holding the media's byzantium/: the mounted
// media, or its copy in RAM.
func (m *Manager) mediaSource() string {
	media := filepath.Join(m.Root, overlays.MediaDir)
	if isMountPoint(media) {
		return media
	}
	if _, err := os.Stat(filepath.Join(m.Root, overlays.RAMDir, overlays.MediaRoot)); err == nil {
		return filepath.Join(m.Root, overlays.RAMDir)
	}
	return ""
}

// readManifest fills mod.man (and mod.name) from its mounted layer,
// mounting the module file if it is not.
func (m *Manager) readManifest(mod *module, file string) error {
	if mod.layer == "" {
		if err := m.mountModule(mod, file); err != nil {
			return err
		}
	}
	paths, _ := filepath.Glob(filepath.Join(m.Root, mod.layer, manifest.Dir, "*.json"))
	if len(paths) != 1 {
		return fmt.Errorf("%s carries %d manifests in %s, want 1", mod.file, len(paths), manifest.Dir)
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		return err
	}
	man, err := manifest.Parse(b)
	if err != nil {
		return fmt.Errorf("%s: %w", mod.file, err)
	}
	mod.man = man
	if mod.name == "" {
		mod.name = man.Name
	}
	return nil
}

// mountModule mounts the module file read-only under overlays.LayersDir.
func (m *Manager) mountModule(mod *module, file string) error {
	if file == "" {
		src := m.mediaSource()
		if src == "" {
			return fmt.Errorf("%w: %s: the boot media is not mounted (copy2ram?)", ErrRefused, mod.file)
		}
		file = filepath.Join(src, mod.file)
	}
	rel := filepath.Join(overlays.LayersDir, "opt-"+strings.TrimSuffix(filepath.Base(mod.file), filepath.Ext(mod.file)))
	dir := filepath.Join(m.Root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if isMountPoint(dir) {
		mod.layer, mod.mountedB = rel, true
		return nil
	}
	closer, dev, err := loopdev.Attach(m.devRoot(), file, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := unix.Mount(dev, dir, "squashfs", unix.MS_RDONLY|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mounting %s: %w", mod.file, err)
	}
	mod.layer, mod.mountedB = rel, true
	return nil
}

// devRoot is where /dev/loop-control is: the node's own /dev even when
// Root is a test folder.
func (m *Manager) devRoot() string {
	if _, err := os.Stat(filepath.Join(m.Root, "dev/loop-control")); err == nil {
		return m.Root
	}
	return "/"
}

func (m *Manager) unmountModule(mod *module) error {
	if !mod.mountedB {
		return nil
	}
	if err := unix.Unmount(filepath.Join(m.Root, mod.layer), 0); err != nil {
		return fmt.Errorf("unmounting %s: %w", mod.name, err)
	}
	mod.layer, mod.mountedB = "", false
	return nil
}

// resolve finds the module that a dependency names: by name, then by
// what modules provide.
func (m *Manager) resolve(dep string) *module {
	if mod := m.modules[dep]; mod != nil {
		return mod
	}
	for _, mod := range m.sorted() {
		for _, p := range mod.man.Provides {
			if p == dep {
				return mod
			}
		}
	}
	return nil
}

func (m *Manager) sorted() []*module {
	out := make([]*module, 0, len(m.modules))
	for _, mod := range m.modules {
		out = append(out, mod)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].file < out[j].file })
	return out
}

// closure returns mod's dependencies, dependencies first, mod last; a
// missing dependency or a cycle is an error naming it.
func (m *Manager) closure(mod *module) ([]*module, error) {
	var out []*module
	state := map[*module]int{} // 1 visiting, 2 done
	var path []string
	var visit func(x *module) error
	visit = func(x *module) error {
		switch state[x] {
		case 2:
			return nil
		case 1:
			i := 0
			for i < len(path) && path[i] != x.name {
				i++
			}
			return fmt.Errorf("%w: a dependency cycle: %s", ErrRefused, strings.Join(append(path[i:], x.name), " → "))
		}
		state[x] = 1
		path = append(path, x.name)
		for _, d := range x.man.Depends {
			dm := m.resolve(d)
			if dm == nil {
				return fmt.Errorf("%w: %s depends on %s, which no module on the media is or provides", ErrRefused, x.name, d)
			}
			if err := visit(dm); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[x] = 2
		out = append(out, x)
		return nil
	}
	return out, visit(mod)
}

// requiredBy lists the loaded or active modules that need mod, directly
// or not, sorted.
func (m *Manager) requiredBy(mod *module) []string {
	var out []string
	for _, x := range m.sorted() {
		if x == mod || !(x.loaded || x.active) {
			continue
		}
		deps, err := m.closure(x)
		if err != nil {
			continue
		}
		for _, d := range deps[:len(deps)-1] {
			if d == mod {
				out = append(out, x.name)
				break
			}
		}
	}
	return out
}

func isMountPoint(p string) bool {
	var st, parent unix.Stat_t
	return unix.Stat(p, &st) == nil && unix.Stat(filepath.Dir(p), &parent) == nil && st.Dev != parent.Dev
}

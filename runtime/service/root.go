package service

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"byzantium/modules/manifest"
	"byzantium/overlays"
	"byzantium/runtime/sandbox"

	"golang.org/x/sys/unix"
)

// dataDir is where the service's data folder appears inside its root.
func dataDir(s *svc) string { return s.decl.DataDir() }

// hostData is the service's data folder on the node: under the state
// folder, so it persists when the node has persistence, and readable by
// the service's uid only.
func (m *Manager) hostData(s *svc) string {
	return filepath.Join(m.StateDir, "services", s.name)
}

// prepareRoot builds the root the service runs in: an overlay of its
// module, that module's dependencies and the base modules (read-only),
// over a small tmpfs of its own (what it writes outside its data folder
// is lost at restart); its data folder bound in; its config files
// rendered; and an /etc/passwd naming its user. Nothing of other services
// is in it: not their modules, not their data.
func (m *Manager) prepareRoot(s *svc, uid uint32, lower []string) (string, func(), error) {
	dir := filepath.Join(m.Root, overlays.ServicesDir, s.name)
	sandbox.UnmountUnder(dir) // a root left by a byzd that died
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700,size=64m"); err != nil {
		return "", nil, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	cleanup := func() { sandbox.UnmountUnder(dir) }
	root := filepath.Join(dir, "root")
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	// The root folder itself must be searchable by the service's user.
	os.Chmod(dir, 0o711)
	opts := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
	if err := unix.Mount("overlay", root, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("mount overlay for %s: %w", s.name, err)
	}
	fail := func(err error) (string, func(), error) {
		cleanup()
		return "", nil, err
	}
	// Its data folder, kept with the node's state.
	host := m.hostData(s)
	if err := os.MkdirAll(host, 0o700); err != nil {
		return fail(err)
	}
	if err := os.Lchown(host, int(uid), int(uid)); err != nil {
		return fail(err)
	}
	if err := os.Chmod(host, 0o700); err != nil {
		return fail(err)
	}
	if err := bindData(host, root, dataDir(s)); err != nil {
		return fail(err)
	}
	// Then what byzd writes, none of it through a symlink nor into the
	// data folder (the manifest keeps config files out of it, and
	// writeIn stays on the root's own mount).
	if err := writeAccounts(root, s.user(), uid, dataDir(s)); err != nil {
		return fail(err)
	}
	for _, c := range s.decl.Config {
		if err := m.renderConfig(root, s, c.Path, c.Mode, c.Template); err != nil {
			return fail(err)
		}
	}
	return root, cleanup, nil
}

// lowerDirs lists the overlay's lower folders, top first: the module,
// its dependencies (each above what it needs), then the base modules.
func (m *Manager) lowerDirs(mod *module) ([]string, error) {
	deps, err := m.closure(mod)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[*module]bool{}
	for i := len(deps) - 1; i >= 0; i-- {
		d := deps[i]
		if d.layer == "" {
			return nil, fmt.Errorf("%w: module %s is not mounted: activate it", ErrRefused, d.name)
		}
		out = append(out, filepath.Join(m.Root, d.layer))
		seen[d] = true
	}
	base := m.sorted()
	for i := len(base) - 1; i >= 0; i-- {
		if b := base[i]; b.folder == overlays.FolderBase && b.layer != "" && !seen[b] {
			out = append(out, filepath.Join(m.Root, b.layer))
		}
	}
	return out, nil
}

// bindData binds the node's folder host on the folder data inside root,
// with no devices and no set-user-ID programs: the service writes there,
// and what it leaves persists.
func bindData(host, root, data string) error {
	fd, err := mkdirIn(root, data)
	if err != nil {
		return fmt.Errorf("the data folder: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Mount(host, fdPath(fd), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding the data folder: %w", err)
	}
	// The flags of a bind mount are set by a remount of the new mount,
	// which the folder's path now leads to.
	mnt, err := unix.Openat2(fd, "..", &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC})
	if err != nil {
		return fmt.Errorf("the data folder: %w", err)
	}
	defer unix.Close(mnt)
	i := strings.LastIndexByte(data, '/')
	top, err := unix.Openat2(mnt, data[i+1:], &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return fmt.Errorf("the data folder: %w", err)
	}
	defer unix.Close(top)
	if err := unix.Mount("", fdPath(top), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("making the data folder nosuid,nodev: %w", err)
	}
	return nil
}

// writeAccounts gives the root an /etc/passwd and /etc/group naming root
// and the service's user, which programs look themselves up in.
func writeAccounts(root, user string, uid uint32, home string) error {
	id := strconv.Itoa(int(uid))
	passwd := "root:x:0:0:root:/root:/bin/sh\n" + user + ":x:" + id + ":" + id + ":" + user + ":" + home + ":/bin/false\n"
	group := "root:x:0:\n" + user + ":x:" + id + ":\n"
	if err := writeIn(root, "/etc/passwd", []byte(passwd), 0o644); err != nil {
		return err
	}
	return writeIn(root, "/etc/group", []byte(group), 0o644)
}

// renderConfig writes one templated config file into the root.
func (m *Manager) renderConfig(root string, s *svc, path, mode, text string) error {
	t, err := template.New(path).Option("missingkey=error").Parse(text)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, manifest.TemplateData{Node: m.Node(), Data: dataDir(s), User: s.user(), Lang: m.Lang()}); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	perm := os.FileMode(0o644)
	if mode != "" {
		n, err := strconv.ParseUint(mode, 8, 32)
		if err != nil {
			return fmt.Errorf("config %s: mode %q", path, mode)
		}
		perm = os.FileMode(n)
	}
	if err := writeIn(root, path, buf.Bytes(), perm); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

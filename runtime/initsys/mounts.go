package initsys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Mount is one filesystem the init mounts, a row of its table.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	// Essential mounts stop the boot when they fail; the others are
	// logged and skipped.
	Essential bool
}

func (m Mount) String() string {
	return fmt.Sprintf("mount -t %s %s /%s -o %#x,%s", m.FSType, m.Source, m.Target, m.Flags, m.Data)
}

// BaseMounts is the namespace every boot starts with. /dev is devtmpfs
// because the initramfs holds no device nodes.
var BaseMounts = []Mount{
	{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", true},
	{"sysfs", "sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", true},
	{"devtmpfs", "dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", true},
	{"tmpfs", "run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", false},
}

// MountFunc has the signature of unix.Mount.
type MountFunc func(source, target, fstype string, flags uintptr, data string) error

// mountAll mounts the table under root. A target that is already a mount
// point (EBUSY) counts as mounted.
func mountAll(root string, table []Mount, mount MountFunc, logf Logf) error {
	for _, m := range table {
		target := filepath.Join(root, m.Target)
		err := os.MkdirAll(target, 0o755)
		if err == nil {
			err = mount(m.Source, target, m.FSType, m.Flags, m.Data)
			if errors.Is(err, unix.EBUSY) {
				err = nil
			}
		}
		if err == nil {
			continue
		}
		err = fmt.Errorf("%s: %w", m, err)
		if m.Essential {
			return err
		}
		logf("warning: %v (carrying on)", err)
	}
	return nil
}

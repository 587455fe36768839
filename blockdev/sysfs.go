package blockdev

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// What the kernel says of any block device (disk, partition, loop,
// device-mapper), read from its sysfs folder (/sys/class/block/NAME, or
// the folder it links to). The clone's safety checks follow these links
// from a mounted file system down to the disks beneath it.

// Attr returns the attribute name of the block device whose sysfs folder
// is dir, trimmed, or "" when it has none.
func Attr(dir, name string) string { return readAttr(dir, name) }

// IsPartition reports whether the sysfs folder dir is a partition's.
func IsPartition(dir string) bool { return exists(filepath.Join(dir, "partition")) }

// Partitions lists the sysfs folders of the partitions of the disk whose
// folder is dir.
func Partitions(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if p := filepath.Join(dir, e.Name()); IsPartition(p) {
			out = append(out, p)
		}
	}
	return out
}

// LoopBacking names the file behind a loop device, as sysfs tells it (a
// path, which may since have been renamed, " (deleted)" appended when
// it was removed), or "" when dir is not a bound loop device.
func LoopBacking(dir string) string { return readAttr(dir, "loop/backing_file") }

// Number reads the device number ("8:16") of the block device whose
// sysfs folder is dir.
func Number(dir string) (major, minor uint32, ok bool) {
	if _, err := fmt.Sscanf(readAttr(dir, "dev"), "%d:%d", &major, &minor); err != nil {
		return 0, 0, false
	}
	return major, minor, true
}

func readAttr(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

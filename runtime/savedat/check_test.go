package savedat

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFits: sizes are checked against FAT32's file limit and the free
// space, and the errors say sizes.
func TestFits(t *testing.T) {
	const fat, ext4 = unix.MSDOS_SUPER_MAGIC, unix.EXT4_SUPER_MAGIC
	for _, c := range []struct {
		fsType, free, size int64
		err                error
		says               []string
	}{
		{fat, 8 << 30, 5 << 40, ErrTooLarge, []string{"FAT32", "5 TiB", "4095 MiB"}},
		{fat, 8 << 30, 4 << 30, ErrTooLarge, []string{"4 GiB save.dat", "4095 MiB"}},
		{fat, 8 << 30, 4095 << 20, nil, nil},
		{fat, 2 << 30, 4095 << 20, ErrNoSpace, []string{"2 GiB free", "4095 MiB save.dat", "at most 2047 MiB fits"}},
		{ext4, 100 << 20, 512 << 20, ErrNoSpace, []string{"100 MiB free", "512 MiB save.dat", "at most 99 MiB fits"}},
		{ext4, 10 << 20, 64 << 20, ErrNoSpace, []string{"no room for one"}},
		{ext4, 8 << 40, 5 << 40, nil, nil},
		{ext4, 1 << 30, 1 << 30, ErrNoSpace, []string{"1 GiB free", "1025 MiB"}},
	} {
		err := fits(c.fsType, c.free, c.size, "/media/stick/byzantium/changes")
		if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("fits(%#x, %d, %d) = %v, want %v", c.fsType, c.free, c.size, err, c.err)
			continue
		}
		for _, s := range c.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("fits(%#x, %d, %d) = %q, which does not say %q", c.fsType, c.free, c.size, err, s)
			}
		}
		if err != nil && strings.Contains(err.Error(), "cluster") {
			t.Errorf("%q speaks in clusters", err)
		}
	}
}

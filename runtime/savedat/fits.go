package savedat

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Whether a save.dat fits is checked before anything is written, and
// said in sizes: the file system's limit for one file (FAT32, the file
// system of most sticks, stops short of 4 GiB) and its free space.

// MaxFATFile is the largest file FAT32 holds: 4 GiB less a byte, so a
// save.dat on FAT is 4095 MiB at most.
const MaxFATFile = 1<<32 - 1

// ErrTooLarge reports a save.dat larger than its file system holds in one
// file. It is an ErrBadOption.
var ErrTooLarge = fmt.Errorf("%w: larger than the file system holds in one file", ErrBadOption)

// folderSlack is room left for the folder entries a new save.dat may
// need (byzantium/changes/ on a FAT stick takes a cluster or two).
const folderSlack = 1 << 20

// CheckFATSize checks a file size against FAT32's limit; clone calls it
// for the FAT it writes, Fits for one that is mounted.
func CheckFATSize(size int64) error {
	if size > MaxFATFile {
		return fmt.Errorf("%w: FAT32 holds files of up to 4 GiB less a byte, so a %s save.dat cannot be on it: 4095 MiB is the most",
			ErrTooLarge, SizeString(size))
	}
	return nil
}

// Fits checks that a file of size bytes can be written in dir (or, when
// dir is still to be made, in its nearest existing parent): within the
// file system's file size limit and its free space.
func Fits(dir string, size int64) error {
	d := dir
	for {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		d = filepath.Dir(d)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d, &st); err != nil {
		return fmt.Errorf("savedat: statfs %s: %w", d, err)
	}
	return fits(int64(st.Type), int64(st.Bavail)*int64(st.Bsize), size, dir)
}

// fits is Fits on a file system of type fsType (statfs's magic) with
// free bytes available.
func fits(fsType, free, size int64, where string) error {
	if fsType == unix.MSDOS_SUPER_MAGIC {
		if err := CheckFATSize(size); err != nil {
			return fmt.Errorf("%s is on FAT: %w", where, err)
		}
	}
	if size+folderSlack > free {
		most := (free - folderSlack) &^ (1<<20 - 1)
		if fsType == unix.MSDOS_SUPER_MAGIC {
			most = min(most, MaxFATFile&^(1<<20-1))
		}
		hint := "there is no room for one"
		if most >= MinSize {
			hint = "at most " + SizeString(most) + " fits"
		}
		return fmt.Errorf("%w: %s has %s free, and a %s save.dat needs %s: choose a smaller size (%s)",
			ErrNoSpace, where, SizeString(max(free, 0)&^(1<<20-1)), SizeString(size), SizeString(size+folderSlack), hint)
	}
	return nil
}

// SizeString writes n in the largest binary unit that divides it (TiB,
// GiB, MiB), else in bytes.
func SizeString(n int64) string {
	switch {
	case n != 0 && n%(1<<40) == 0:
		return fmt.Sprintf("%d TiB", n>>40)
	case n != 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

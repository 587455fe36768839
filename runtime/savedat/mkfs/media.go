package mkfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"byzantium/runtime/savedat"

	"golang.org/x/sys/unix"
)

// ErrMediaRefused reports boot media that cannot take a new save.dat as
// it is: a CD image, one that already has a save.dat, or one that will
// not become writable.
var ErrMediaRefused = errors.New("mkfs: the media cannot take a save.dat")

// refusal is an error in its own words that errors.Is matches to kind,
// so the words reach a person unprefixed.
type refusal struct {
	kind  error
	msg   string
	cause error // what the system said, if anything
}

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == r.kind }
func (r *refusal) Unwrap() error        { return r.cause }

func refuse(kind error, format string, a ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, a...)}
}

// CreateOnMedia makes the save.dat at rel on the boot media mounted at
// media, for the next boot, on a running node. byz-init mounts the media
// read-only unless a save.dat is in use, so it is made writable for the
// time it takes. The media is checked first: not a CD image, no save.dat
// at rel already (one is never overwritten), and room for the file in
// full (ErrMediaRefused, savedat.ErrNoSpace).
func CreateOnMedia(media, rel string, opts Options) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(media, &sfs); err != nil {
		return fmt.Errorf("mkfs: statfs %s: %w", media, err)
	}
	if sfs.Type == unix.ISOFS_SUPER_MAGIC {
		return refuse(ErrMediaRefused, "the boot media is a CD image, which cannot be written: boot from a USB stick, or put the save.dat on a partition (changes=)")
	}
	path := filepath.Join(media, rel)
	if _, err := os.Lstat(path); err == nil {
		return refuse(ErrMediaRefused, "%s exists on the media: a save.dat is never overwritten (use byz persist resize to grow it)", rel)
	}
	// The free space of a FAT media: the save.dat is written in full.
	if free := int64(sfs.Bavail) * sfs.Bsize; free < opts.Size+(1<<20) {
		return refuse(savedat.ErrNoSpace, "the media has %d MiB free, and a %d MiB save.dat needs %d MiB: choose a smaller size", free>>20, opts.Size>>20, opts.Size>>20+1)
	}
	if sfs.Flags&unix.ST_RDONLY != 0 {
		if err := unix.Mount("", media, "", unix.MS_REMOUNT, ""); err != nil {
			return &refusal{ErrMediaRefused, fmt.Sprintf("making the media writable: %v (is the stick write-protected?)", err), err}
		}
		defer unix.Mount("", media, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	if err := Create(path, opts); err != nil {
		return err
	}
	unix.Sync()
	return nil
}

// Package tmpdir makes the temporary folders a long command works in (a
// build's work folder, its staging folder beside the outputs) so that a
// later run can tell one in use from one left behind by a run that was
// killed: the process that made a folder holds an exclusive flock(2) on it
// for as long as it works there, and the kernel drops the lock when that
// process dies, however it dies. Sweep removes only folders that match the
// caller's prefix and that nobody holds.
package tmpdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MinAge is how old an unlocked folder must be before Sweep takes it as
// left behind. A folder exists for a few microseconds between its mkdir
// and its flock; the margin covers that window many times over.
const MinAge = 10 * time.Second

// Dir is a temporary folder this process made and holds.
type Dir struct {
	Path string
	lock *os.File
}

// New makes a folder in parent named prefix followed by random characters
// (as os.MkdirTemp) and locks it.
func New(parent, prefix string) (*Dir, error) {
	p, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.Remove(p)
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	return &Dir{Path: p, lock: f}, nil
}

// Remove deletes the folder and everything in it, then drops the lock.
// It may be called more than once.
func (d *Dir) Remove() error {
	if d == nil || d.lock == nil {
		return nil
	}
	// A goroutine may still be writing into the tree (an extract that
	// Ctrl-C stopped, which cannot be cancelled mid-file): moved away
	// first, the tree gets no new entry by its old path, and the removal
	// below catches up with at most the entry that was under way. The new
	// name keeps the prefix, so a Sweep still finds it if this process
	// dies first; the lock is on the folder itself and moves with it.
	p := d.Path
	if err := os.Rename(p, p+"-gone"); err == nil {
		p += "-gone"
	}
	err := removeAll(p)
	d.lock.Close()
	d.lock = nil
	return err
}

// removeAll is os.RemoveAll, repeated while a goroutine still writing into
// the tree adds an entry between the listing and the rmdir.
func removeAll(p string) error {
	var err error
	for range 5 {
		if err = os.RemoveAll(p); err == nil {
			return nil
		}
	}
	return err
}

// Stale is a folder Sweep found left behind.
type Stale struct {
	Path string
	Size int64 // bytes of the regular files in it
}

// ErrBadPrefix reports a prefix that could match folders tmpdir did not
// make: it must start with a dot and be more than one character long.
var ErrBadPrefix = errors.New("tmpdir: prefix must be a hidden name such as .work-")

// Sweep finds the folders in parent whose names start with prefix, that no
// process holds and that are at least MinAge old, and removes them unless
// dryRun is set. It returns what it found (removed, or would remove).
func Sweep(parent, prefix string, dryRun bool) ([]Stale, error) {
	if len(prefix) < 2 || prefix[0] != '.' {
		return nil, ErrBadPrefix
	}
	ents, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var found []Stale
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		s, ok, err := sweepOne(p, dryRun)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			found = append(found, s)
		}
	}
	return found, errors.Join(errs...)
}

// sweepOne removes p if nobody holds it, holding its lock while it does so
// that no other sweeper or prune counts it twice.
func sweepOne(p string, dryRun bool) (Stale, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return Stale{}, false, nil // gone meanwhile, or not ours to read
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return Stale{}, false, nil // held: a live run works there
	}
	fi, err := f.Stat()
	if err != nil || time.Since(fi.ModTime()) < MinAge {
		return Stale{}, false, nil
	}
	s := Stale{Path: p, Size: Size(p)}
	if dryRun {
		return s, true, nil
	}
	if err := removeAll(p); err != nil {
		return s, false, fmt.Errorf("removing %s: %w", p, err)
	}
	return s, true, nil
}

// Size adds up the sizes of the regular files under p, each inode once.
func Size(p string) int64 {
	var n int64
	seen := map[[2]uint64]bool{}
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := [2]uint64{st.Dev, st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}

package changes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A store is a mounted persistence store (a save.dat, a partition or a
// folder) that keeps the saved changes in its UpperDir.
const (
	// UpperDir is the store's folder holding the upper layer, the same
	// name byz-init uses when the store is the live upper layer.
	UpperDir = "upper"
	// Marker is the file that exists in the store while a save is under
	// way: found at boot, it means the last save was cut short, so the
	// changes may mix two moments (each file is whole, old or new).
	Marker = ".byz-saving"
)

// Save copies the live upper layer into the store mounted at store. Saves
// are serialized with a lock on the store's folder, so byzd and a
// shutdown script cannot interleave.
func Save(upper, store string) (Stats, error) {
	unlock, err := lock(store)
	if err != nil {
		return Stats{}, err
	}
	defer unlock()
	marker := filepath.Join(store, Marker)
	if err := writeSynced(marker); err != nil {
		return Stats{}, fmt.Errorf("changes: marking the save as under way: %w", err)
	}
	st, err := Sync(upper, filepath.Join(store, UpperDir))
	if err != nil {
		// The marker stays: the store is a mix, and the next boot says so.
		return st, err
	}
	if err := os.Remove(marker); err != nil {
		return st, fmt.Errorf("changes: %w", err)
	}
	fsyncDir(store)
	return st, nil
}

// Load copies the saved changes from the store mounted at store into the
// empty upper layer upper. interrupted reports that the last save did not
// finish.
func Load(store, upper string) (st Stats, interrupted bool, err error) {
	_, err = os.Stat(filepath.Join(store, Marker))
	interrupted = err == nil
	saved := filepath.Join(store, UpperDir)
	if _, err := os.Stat(saved); errors.Is(err, os.ErrNotExist) {
		// A new store: nothing saved yet.
		return st, interrupted, os.MkdirAll(upper, 0o755)
	}
	st, err = Sync(saved, upper)
	return st, interrupted, err
}

func lock(dir string) (func(), error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("changes: the store: %w", err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("changes: locking the store %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

func writeSynced(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	fsyncDir(filepath.Dir(path))
	return err
}

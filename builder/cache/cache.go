// Package cache is the builder's content-addressed store: each artifact (a
// module, the kernel module tree, an initramfs) is kept under a key derived
// from everything that decides its bytes, so a build whose inputs did not
// change finds it and compresses nothing, and a build whose inputs changed
// misses only where they changed.
package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/builder/tmpdir"
)

// Key derives a cache key from the parts that decide an artifact: its kind,
// the tool version, options, input digests. Parts are length-prefixed so
// ("ab","c") and ("a","bc") differ.
func Key(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Cache is a directory of artifacts named by key. The zero Dir means no
// cache: every Build builds, nothing is kept.
type Cache struct {
	Dir string
	// Refresh rebuilds every artifact (--no-cache) and stores the result,
	// so the next build may use it.
	Refresh bool

	hits, misses atomic.Int64
}

// touchEvery is how stale an artifact's modification time may be before a
// hit refreshes it: Prune goes by it, and an hour is fine enough for
// that without a write on every hit.
const touchEvery = time.Hour

// Stats reports how many Builds found their artifact and how many built it.
func (c *Cache) Stats() (hits, misses int64) { return c.hits.Load(), c.misses.Load() }

// Path is where the artifact with key and extension ext (".xzm") lives.
func (c *Cache) Path(key, ext string) string { return filepath.Join(c.Dir, key[:2], key+ext) }

// Build returns the path of the artifact for key, calling build to make it
// when the cache does not hold it. build writes the artifact to the path it
// is given; only when it succeeds is the file moved into the cache, so an
// interrupted or failed build never leaves an entry that looks complete.
func (c *Cache) Build(key, ext string, build func(path string) error) (path string, hit bool, err error) {
	return c.BuildIn("", key, ext, build)
}

// BuildIn is Build making the artifact in tempDir, a folder on the cache's
// file system that the caller removes when done (a build's work folder),
// so that an interrupted build leaves nothing in the cache itself. With
// tempDir empty, the artifact is made in a held folder beside where it
// goes, removed after.
func (c *Cache) BuildIn(tempDir, key, ext string, build func(path string) error) (path string, hit bool, err error) {
	if c.Dir == "" {
		return "", false, fmt.Errorf("cache: no directory")
	}
	final := c.Path(key, ext)
	if !c.Refresh {
		if fi, err := os.Stat(final); err == nil && fi.Mode().IsRegular() {
			c.hits.Add(1)
			if time.Since(fi.ModTime()) > touchEvery {
				// Best effort: a cache on a read-only file system
				// still serves, it only ages for Prune.
				_ = os.Chtimes(final, time.Time{}, time.Now())
			}
			return final, true, nil
		}
	}
	c.misses.Add(1)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", false, fmt.Errorf("cache: %w", err)
	}
	var tmp string
	if tempDir != "" {
		// Mkdir, not MkdirAll: if the caller removed its folder (an
		// interrupted build), nothing must bring it back.
		if tmp, err = os.MkdirTemp(tempDir, "artifact-"); err != nil {
			return "", false, fmt.Errorf("cache: %w", err)
		}
		defer os.RemoveAll(tmp)
	} else {
		d, err := tmpdir.New(filepath.Dir(final), buildPrefix)
		if err != nil {
			return "", false, fmt.Errorf("cache: %w", err)
		}
		defer d.Remove()
		tmp = d.Path
	}
	out := filepath.Join(tmp, "artifact"+ext)
	if err := build(out); err != nil {
		return "", false, err
	}
	if err := os.Rename(out, final); err != nil {
		return "", false, fmt.Errorf("cache: %w", err)
	}
	return final, false, nil
}

// The names the cache gives its own folders and files; Prune removes
// nothing else.
const (
	workPrefix  = ".work-"  // a build's work folder, in Dir
	buildPrefix = ".build-" // an artifact being made, beside where it goes
	lockName    = ".lock"
)

// ErrBusy reports a cache a build is using, which Prune leaves alone.
var ErrBusy = errors.New("cache: in use by a build")

// lock takes a flock on Dir/.lock: shared for builds, which may run side
// by side, exclusive for Prune, which must not remove an artifact a build
// has just found.
func (c *Cache) lock(how int) (unlock func(), err error) {
	if c.Dir == "" {
		return nil, fmt.Errorf("cache: no directory")
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(c.Dir, lockName), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s): try again when it is done", ErrBusy, c.Dir)
		}
		return nil, fmt.Errorf("cache: locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// Use marks the cache in use by a build until unlock is called: Prune
// waits for no build, it refuses with ErrBusy.
func (c *Cache) Use() (unlock func(), err error) { return c.lock(unix.LOCK_SH) }

// NewWorkDir makes a build's work folder in the cache, held for as long as
// the build runs, after removing those that builds killed before they could
// clean up left behind (it returns them).
func (c *Cache) NewWorkDir() (*tmpdir.Dir, []tmpdir.Stale, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("cache: %w", err)
	}
	swept, err := tmpdir.Sweep(c.Dir, workPrefix, false)
	if err != nil {
		return nil, swept, fmt.Errorf("cache: %w", err)
	}
	d, err := tmpdir.New(c.Dir, workPrefix)
	if err != nil {
		return nil, swept, fmt.Errorf("cache: %w", err)
	}
	return d, swept, nil
}

package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/builder/tmpdir"
)

// PruneOptions says what Prune removes.
type PruneOptions struct {
	// UnusedFor removes the artifacts no build has used for this long
	// (a hit refreshes an artifact's time at most once an hour).
	UnusedFor time.Duration
	// All removes every artifact, used or not.
	All bool
	// DryRun reports what would go and removes nothing.
	DryRun bool
}

// Pruned is one thing Prune removed (or would remove).
type Pruned struct {
	Path string
	Size int64
	Why  string
}

// PruneResult says what Prune removed and what it kept.
type PruneResult struct {
	Removed   []Pruned
	Kept      int   // artifacts kept
	KeptBytes int64 // their size
	// Foreign lists what the cache did not make (by its name): Prune
	// leaves it alone.
	Foreign []string
}

// RemovedBytes adds up the sizes of what was removed.
func (r *PruneResult) RemovedBytes() int64 {
	var n int64
	for _, p := range r.Removed {
		n += p.Size
	}
	return n
}

// Prune removes from the cache the work folders and half-made artifacts
// that killed builds left behind, and the artifacts unused for
// opts.UnusedFor (every artifact with opts.All). It removes only what the
// cache names as its own (XX/KEY.EXT artifacts, .work-* and XX/.build-*
// folders) and refuses with ErrBusy while a build uses the cache.
func (c *Cache) Prune(opts PruneOptions) (*PruneResult, error) {
	if _, err := os.Stat(c.Dir); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	unlock, err := c.lock(unix.LOCK_EX | unix.LOCK_NB)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &PruneResult{}
	var errs []error
	stale := func(parent, prefix, why string) {
		found, err := tmpdir.Sweep(parent, prefix, opts.DryRun)
		if err != nil {
			errs = append(errs, err)
		}
		for _, s := range found {
			res.Removed = append(res.Removed, Pruned{Path: s.Path, Size: s.Size, Why: why})
		}
	}
	stale(c.Dir, workPrefix, "work folder of a build that was killed")
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	now := time.Now()
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(c.Dir, name)
		switch {
		case name == lockName || strings.HasPrefix(name, workPrefix):
			continue // the lock; work folders held by a build (swept above otherwise)
		case !e.IsDir() || !isHex(name, 2):
			res.Foreign = append(res.Foreign, p)
			continue
		}
		stale(p, buildPrefix, "artifact a killed build left half made")
		shard, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("cache: %w", err))
			continue
		}
		left := 0
		for _, a := range shard {
			ap := filepath.Join(p, a.Name())
			if strings.HasPrefix(a.Name(), buildPrefix) && a.IsDir() {
				if _, err := os.Stat(ap); err == nil {
					left++ // held by a build that does not hold the cache lock
				}
				continue
			}
			if !a.Type().IsRegular() || !isArtifact(name, a.Name()) {
				res.Foreign = append(res.Foreign, ap)
				left++
				continue
			}
			fi, err := a.Info()
			if err != nil {
				continue // removed meanwhile
			}
			unused := now.Sub(fi.ModTime())
			if !opts.All && unused < opts.UnusedFor {
				res.Kept++
				res.KeptBytes += fi.Size()
				left++
				continue
			}
			why := "every artifact (--all)"
			if !opts.All {
				why = fmt.Sprintf("unused for %s", days(unused))
			}
			if !opts.DryRun {
				if err := os.Remove(ap); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, fmt.Errorf("cache: %w", err))
					left++
					continue
				}
			}
			res.Removed = append(res.Removed, Pruned{Path: ap, Size: fi.Size(), Why: why})
		}
		if left == 0 && !opts.DryRun {
			os.Remove(p) // the shard folder, now empty
		}
	}
	sort.Slice(res.Removed, func(i, j int) bool { return res.Removed[i].Path < res.Removed[j].Path })
	return res, errors.Join(errs...)
}

// isArtifact reports whether name is KEY.EXT (or KEY) in the shard named
// for the key's first two digits.
func isArtifact(shard, name string) bool {
	key, _, _ := strings.Cut(name, ".")
	return isHex(key, 64) && key[:2] == shard
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// days writes a duration the way one thinks of cache age.
func days(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	default:
		return d.Round(time.Minute).String()
	}
}

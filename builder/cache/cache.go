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
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
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

// Stats reports how many Builds found their artifact and how many built it.
func (c *Cache) Stats() (hits, misses int64) { return c.hits.Load(), c.misses.Load() }

// Path is where the artifact with key and extension ext (".xzm") lives.
func (c *Cache) Path(key, ext string) string { return filepath.Join(c.Dir, key[:2], key+ext) }

// Build returns the path of the artifact for key, calling build to make it
// when the cache does not hold it. build writes the artifact to the path it
// is given; only when it succeeds is the file moved into the cache, so an
// interrupted or failed build never leaves an entry that looks complete.
func (c *Cache) Build(key, ext string, build func(path string) error) (path string, hit bool, err error) {
	if c.Dir == "" {
		return "", false, fmt.Errorf("cache: no directory")
	}
	final := c.Path(key, ext)
	if !c.Refresh {
		if fi, err := os.Stat(final); err == nil && fi.Mode().IsRegular() {
			c.hits.Add(1)
			return final, true, nil
		}
	}
	c.misses.Add(1)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", false, fmt.Errorf("cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), ".build-")
	if err != nil {
		return "", false, fmt.Errorf("cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "artifact"+ext)
	if err := build(out); err != nil {
		return "", false, err
	}
	if err := os.Rename(out, final); err != nil {
		return "", false, fmt.Errorf("cache: %w", err)
	}
	return final, false, nil
}

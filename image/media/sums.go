package media

import (
	"sync"
	"time"
)

// Sums remembers the digests of host files between the plans of one
// build: the ISO and the USB tree carry the same kernel, initramfs and
// modules, which need not be read and hashed once per tree. A file is
// known by its path, size and modification time; the streams still hash
// every file as they write it, so one changed in between is caught there.
// The zero value is ready to use and safe for concurrent plans.
type Sums struct {
	mu sync.Mutex
	m  map[sumKey]string
}

type sumKey struct {
	path  string
	size  int64
	mtime time.Time
}

func (s *Sums) get(k sumKey) (string, bool) {
	if s == nil {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sum, ok := s.m[k]
	return sum, ok
}

func (s *Sums) put(k sumKey, sum string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[sumKey]string{}
	}
	s.m[k] = sum
}

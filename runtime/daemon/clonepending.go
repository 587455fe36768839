package daemon

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// The panel's clone form asks for a confirmation before it erases a disk.
// The request waits on the server under a one-time nonce, and the
// confirmation page carries only the nonce: the new stick's passphrase is
// never sent back to the browser (where it would sit in the page, its
// history and its form cache).

const (
	// maxPendingClones bounds the requests waiting for a confirmation;
	// a new one pushes out the oldest.
	maxPendingClones = 8
	// pendingCloneTTL is how long a confirmation page stays usable.
	pendingCloneTTL = 10 * time.Minute
)

// pendingClones holds clone requests awaiting confirmation. Its zero
// value is ready to use.
type pendingClones struct {
	mu  sync.Mutex
	m   map[string]pendingClone
	now func() time.Time // nil: time.Now; tests move it
}

type pendingClone struct {
	req     CloneRequest
	disk    Disk   // as shown on the confirmation page
	session string // the login it was asked under; "" for a token
	expires time.Time
}

func (p *pendingClones) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// put keeps a request for session and returns its nonce.
func (p *pendingClones) put(req CloneRequest, disk Disk, session string) string {
	b := make([]byte, 24)
	rand.Read(b)
	nonce := base64.RawURLEncoding.EncodeToString(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	if p.m == nil {
		p.m = map[string]pendingClone{}
	}
	for k, v := range p.m {
		if !now.Before(v.expires) {
			delete(p.m, k)
		}
	}
	for len(p.m) >= maxPendingClones {
		oldest := ""
		for k, v := range p.m {
			if oldest == "" || v.expires.Before(p.m[oldest].expires) {
				oldest = k
			}
		}
		delete(p.m, oldest)
	}
	p.m[nonce] = pendingClone{req: req, disk: disk, session: session, expires: now.Add(pendingCloneTTL)}
	return nonce
}

// take returns the request kept under nonce for session and forgets it:
// a nonce works once, before it expires, for the login that asked.
func (p *pendingClones) take(nonce, session string) (pendingClone, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc, ok := p.m[nonce]
	if !ok {
		return pendingClone{}, false
	}
	if pc.session != session {
		// Another login's nonce: leave it to its owner.
		return pendingClone{}, false
	}
	delete(p.m, nonce)
	if !p.clock().Before(pc.expires) {
		return pendingClone{}, false
	}
	return pc, true
}

// len is the number of requests kept (expired ones included until the
// next put).
func (p *pendingClones) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

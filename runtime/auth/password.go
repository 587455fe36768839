// Package auth is who may run a node: the admin password (argon2id),
// browser sessions with their CSRF tokens, API tokens, the one-time setup
// code that claims a new node, credentials handed over by a VM host, and
// the slowing of repeated bad logins.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// HashParams is an argon2id cost.
type HashParams struct {
	Time    uint32 // passes
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultHash is OWASP's first argon2id choice (19 MiB, 2 passes, 1
// lane): a node may have little RAM, and a login must stay quick under
// emulation too.
var DefaultHash = HashParams{Time: 2, Memory: 19 * 1024, Threads: 1}

// ErrBadHash reports a stored hash that is not an argon2id PHC string.
var ErrBadHash = errors.New("auth: not an argon2id password hash")

// MinPassword is the shortest password accepted.
const MinPassword = 10

// HashPassword returns the PHC string of password under p:
// $argon2id$v=19$m=19456,t=2,p=1$SALT$HASH (unpadded base64), the form
// the argon2 reference tool and most libraries read.
func HashPassword(password string, p HashParams) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, 32)
	releaseMemory()
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		enc.EncodeToString(salt), enc.EncodeToString(key))
}

// CheckHash reports whether s is a hash VerifyPassword can use, with an
// error saying what is wrong (a spec's or a credential's hash).
func CheckHash(s string) error {
	_, _, _, err := parseHash(s)
	return err
}

// VerifyPassword reports whether password matches the PHC string hash,
// comparing in constant time.
func VerifyPassword(hash, password string) bool {
	p, salt, key, err := parseHash(hash)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	releaseMemory()
	return subtle.ConstantTimeCompare(got, key) == 1
}

func parseHash(s string) (p HashParams, salt, key []byte, err error) {
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: want $argon2id$v=19$m=…,t=…,p=…$salt$hash", ErrBadHash)
	}
	for _, kv := range strings.Split(f[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, nil, nil, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return p, nil, nil, fmt.Errorf("%w: %d lanes", ErrBadHash, n)
			}
			p.Threads = uint8(n)
		default:
			return p, nil, nil, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
	}
	// Bounds keep a hostile hash from eating the node's memory or time.
	if p.Time < 1 || p.Time > 64 || p.Memory < 8 || p.Memory > 1<<20 || p.Threads < 1 {
		return p, nil, nil, fmt.Errorf("%w: parameters m=%d,t=%d,p=%d out of range", ErrBadHash, p.Memory, p.Time, p.Threads)
	}
	enc := base64.RawStdEncoding
	if salt, err = enc.DecodeString(f[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, fmt.Errorf("%w: the salt", ErrBadHash)
	}
	if key, err = enc.DecodeString(f[5]); err != nil || len(key) < 16 {
		return p, nil, nil, fmt.Errorf("%w: the hash", ErrBadHash)
	}
	return p, salt, key, nil
}

// randomToken returns n random bytes as unpadded URL-safe base64.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// releaseMemory gives argon2's working memory (19 MiB by default) back to
// the system soon after a hash: logins are rare, and byzd would otherwise
// keep it resident until the garbage collector's next cycles return it.
// It used to do so at once, after every hash; but debug.FreeOSMemory is a
// full, forced collection, and a stream of wrong passwords then made byzd
// collect for every one of them. Now the first hash arms one release
// releaseDelay later, and the hashes meanwhile share it: at most one
// forced collection per releaseDelay, however many hashes.
func releaseMemory() {
	if releaseArmed.CompareAndSwap(false, true) {
		time.AfterFunc(releaseDelay, func() {
			releaseArmed.Store(false)
			debug.FreeOSMemory()
		})
	}
}

var releaseArmed atomic.Bool

const releaseDelay = 2 * time.Second

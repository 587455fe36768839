package npm

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Integrity is a parsed Subresource Integrity string, as npm writes in a
// lock: one or more "ALGO-BASE64DIGEST" separated by spaces. Only the
// strongest algorithm present is checked, as npm's ssri does; a tarball
// matches when its digest equals any of that algorithm's digests.
type Integrity struct {
	Algo    string   // "sha512", "sha384", "sha256" or "sha1"
	Digests [][]byte // the expected digests of Algo
}

// algos in order of strength, with their constructors.
var algos = []struct {
	name string
	new  func() hash.Hash
	size int
}{
	{"sha512", sha512.New, sha512.Size},
	{"sha384", sha512.New384, sha512.Size384},
	{"sha256", sha256.New, sha256.Size},
	{"sha1", sha1.New, sha1.Size},
}

// ParseIntegrity parses an SRI string. Unknown algorithms are ignored (as
// npm does), but at least one known one must be there, and every digest
// of a known algorithm must decode to its size.
func ParseIntegrity(s string) (*Integrity, error) {
	found := map[string][][]byte{}
	for _, tok := range strings.Fields(s) {
		algo, rest, ok := strings.Cut(tok, "-")
		if !ok {
			continue
		}
		rest, _, _ = strings.Cut(rest, "?") // SRI options: none that matter here
		for _, a := range algos {
			if a.name != algo {
				continue
			}
			d, err := base64.StdEncoding.DecodeString(rest)
			if err != nil || len(d) != a.size {
				return nil, fmt.Errorf("%w: integrity %q: %s digest is not %d bytes of base64", ErrIntegrity, s, algo, a.size)
			}
			found[algo] = append(found[algo], d)
		}
	}
	for _, a := range algos {
		if ds := found[a.name]; ds != nil {
			return &Integrity{Algo: a.name, Digests: ds}, nil
		}
	}
	return nil, fmt.Errorf("%w: integrity %q names no sha512, sha384, sha256 or sha1 digest", ErrIntegrity, s)
}

// Hash returns a new hash of the integrity's algorithm.
func (in *Integrity) Hash() hash.Hash {
	for _, a := range algos {
		if a.name == in.Algo {
			return a.new()
		}
	}
	panic("npm: unknown algorithm " + in.Algo)
}

// Matches reports whether sum (of Algo) is one of the expected digests.
func (in *Integrity) Matches(sum []byte) bool {
	for _, d := range in.Digests {
		if bytes.Equal(d, sum) {
			return true
		}
	}
	return false
}

// Key names the tarball in the cache: the algorithm and the first digest
// in hex ("sha512-0a1b…").
func (in *Integrity) Key() string {
	return in.Algo + "-" + hex.EncodeToString(in.Digests[0])
}

// String is the SRI form of the expected digests.
func (in *Integrity) String() string {
	parts := make([]string, len(in.Digests))
	for i, d := range in.Digests {
		parts[i] = in.Algo + "-" + base64.StdEncoding.EncodeToString(d)
	}
	return strings.Join(parts, " ")
}

// MismatchError reports a tarball whose digest is not its lock's.
type MismatchError struct {
	Package  string // name@version
	Where    string // the file or URL read
	Expected string // SRI, from the lock
	Got      string // SRI of the bytes read
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: %s: integrity mismatch: the lock expects %s, the tarball is %s; "+
		"refusing it (a tampered or corrupt tarball, or a lock edited by hand: make npm-relock)",
		e.Package, e.Where, e.Expected, e.Got)
}

func (e *MismatchError) Unwrap() error { return ErrIntegrity }

// check compares a finished hash with the integrity and returns a
// *MismatchError naming the package when they differ.
func (in *Integrity) check(h hash.Hash, pkg, where string) error {
	sum := h.Sum(nil)
	if in.Matches(sum) {
		return nil
	}
	return &MismatchError{Package: pkg, Where: where, Expected: in.String(),
		Got: in.Algo + "-" + base64.StdEncoding.EncodeToString(sum)}
}

// Package npm lays out an application's node_modules from its npm package
// lock, in pure Go: no npm and no Node.js at build time.
//
// An application is a folder holding package-lock.json (lockfileVersion 2
// or 3, as npm 7 and later write it) and, usually, the package.json it was
// made from. Every package the lock installs is named by its path in the
// tree ("node_modules/a/node_modules/b"), its version and its integrity
// (an SRI digest). Fetch downloads the tarballs from the registry the
// user's npm configuration names into a content-addressed cache, checking
// each digest; Open reads them back from the cache alone and yields the
// laid-out tree as an entry stream, the way npm ci would extract it:
// the tarball's top folder stripped, links and devices dropped, modes
// normalised, bins linked in node_modules/.bin. Lifecycle scripts never
// run; a package that needs one, or that carries a native add-on, is
// refused unless the application's package.json allows it (see Config).
package npm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Errors callers branch on.
var (
	// ErrLock reports a package lock byz cannot lay out: unreadable,
	// an unsupported lockfileVersion, a path or entry it refuses.
	ErrLock = errors.New("npm: bad package lock")
	// ErrIntegrity reports a tarball whose digest is not the one its lock
	// names, or an integrity string byz cannot check.
	ErrIntegrity = errors.New("npm: integrity check failed")
	// ErrUnsafe reports a tarball entry that would land outside its
	// package, or a tarball over the size limits.
	ErrUnsafe = errors.New("npm: unsafe tarball")
	// ErrNative reports a package that needs a build step at install
	// time (a native add-on, an install script) the application did not
	// allow.
	ErrNative = errors.New("npm: package needs an install step")
	// ErrNotCached reports a tarball missing from the cache: fetch first.
	ErrNotCached = errors.New("npm: tarball not in the cache")
	// ErrRegistry reports a registry that is not configured, or a URL
	// that points away from it.
	ErrRegistry = errors.New("npm: registry")
)

// MaxLockSize bounds a package-lock.json: a large application's lock is
// a few megabytes.
const MaxLockSize = 64 << 20

// Lock is a parsed package-lock.json (or npm-shrinkwrap.json).
type Lock struct {
	Name     string
	Version  string
	File     string // as given to ParseLock; errors name it
	Root     *Package
	Packages map[string]*Package // by path; the root ("") is not in it
}

// Package is one entry of the lock's packages map.
type Package struct {
	Path string `json:"-"` // "node_modules/a/node_modules/@s/b"

	// Name is the package's real name: the lock's "name" for an alias
	// ("node_modules/foo" installed from npm:bar), else the last one or
	// two components of Path.
	Name             string            `json:"name"`
	Version          string            `json:"version"`
	Resolved         string            `json:"resolved"`
	Integrity        string            `json:"integrity"`
	Link             bool              `json:"link"`
	Dev              bool              `json:"dev"`
	Optional         bool              `json:"optional"`
	DevOptional      bool              `json:"devOptional"`
	Peer             bool              `json:"peer"`
	InBundle         bool              `json:"inBundle"`
	HasInstallScript bool              `json:"hasInstallScript"`
	OS               stringList        `json:"os"`
	CPU              stringList        `json:"cpu"`
	Libc             stringList        `json:"libc"`
	Dependencies     map[string]string `json:"dependencies"`
	DevDependencies  map[string]string `json:"devDependencies"`
	OptionalDeps     map[string]string `json:"optionalDependencies"`
	PeerDependencies map[string]string `json:"peerDependencies"`
}

// ID is name@version, the way npm names a package in its messages.
func (p *Package) ID() string { return p.Name + "@" + p.Version }

// stringList takes a JSON string or a list of strings, as npm's os, cpu
// and libc fields may be either.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = []string{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return err
	}
	*l = ss
	return nil
}

type lockFile struct {
	Name            string              `json:"name"`
	Version         string              `json:"version"`
	LockfileVersion *int                `json:"lockfileVersion"`
	Packages        map[string]*Package `json:"packages"`
}

// ParseLock reads a package lock. name labels errors (the file name). It
// refuses lockfileVersion 1, whose tree has no paths, and versions newer
// than 3; every path must be a chain of node_modules/NAME folders, and
// every package that is fetched must name a version and an integrity.
func ParseLock(r io.Reader, name string) (*Lock, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxLockSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxLockSize {
		return nil, fmt.Errorf("%s: %w: larger than %d MiB", name, ErrLock, MaxLockSize>>20)
	}
	var lf lockFile
	if err := json.Unmarshal(data, &lf); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrLock, jsonError(data, err))
	}
	switch {
	case lf.LockfileVersion == nil:
		return nil, fmt.Errorf("%s: %w: no lockfileVersion: is this a package-lock.json?", name, ErrLock)
	case *lf.LockfileVersion < 2 || lf.Packages == nil:
		return nil, fmt.Errorf("%s: %w: lockfileVersion %d has no \"packages\" map (npm 6 wrote it); "+
			"refresh it with npm 7 or later (make npm-relock) to get version 3", name, ErrLock, *lf.LockfileVersion)
	case *lf.LockfileVersion > 3:
		return nil, fmt.Errorf("%s: %w: lockfileVersion %d is newer than the 2 and 3 byz reads", name, ErrLock, *lf.LockfileVersion)
	}
	l := &Lock{Name: lf.Name, Version: lf.Version, File: name, Packages: map[string]*Package{}}
	var errs []string
	for _, p := range sortedKeys(lf.Packages) {
		pkg := lf.Packages[p]
		if pkg == nil {
			errs = append(errs, fmt.Sprintf("%q: null entry", p))
			continue
		}
		pkg.Path = p
		if p == "" {
			l.Root = pkg
			continue
		}
		if err := checkPackage(pkg); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		l.Packages[p] = pkg
	}
	if l.Root == nil {
		errs = append(errs, `no root entry "" in "packages"`)
	}
	if len(errs) > 0 {
		if len(errs) > 10 {
			errs = append(errs[:10], fmt.Sprintf("and %d more", len(errs)-10))
		}
		return nil, fmt.Errorf("%s: %w:\n  %s", name, ErrLock, strings.Join(errs, "\n  "))
	}
	return l, nil
}

// checkPackage checks one non-root entry and fills in its name.
func checkPackage(p *Package) error {
	last, err := splitPath(p.Path)
	if err != nil {
		return err
	}
	if p.Link {
		return fmt.Errorf("%s: a link to a local folder (workspaces, file: dependencies): byz lays out registry packages only", p.Path)
	}
	if p.Name == "" {
		p.Name = last
	} else if err := checkName(p.Name); err != nil {
		return fmt.Errorf("%s: name %q: %v", p.Path, p.Name, err)
	}
	if p.InBundle {
		return nil // inside the tarball of the package that bundles it
	}
	if p.Version == "" {
		return fmt.Errorf("%s: no version", p.Path)
	}
	if strings.ContainsAny(p.Version, "/\\ \x00") || strings.HasPrefix(p.Version, ".") {
		return fmt.Errorf("%s: version %q is not a registry version", p.Path, p.Version)
	}
	if p.Resolved != "" && !strings.HasPrefix(p.Resolved, "https://") && !strings.HasPrefix(p.Resolved, "http://") {
		return fmt.Errorf("%s: resolved %q is not a registry tarball (git, file: and other sources are not supported)", p.Path, p.Resolved)
	}
	if p.Integrity == "" {
		return fmt.Errorf("%s: %s has no integrity: a lock without one cannot be checked (make npm-relock)", p.Path, p.ID())
	}
	if _, err := ParseIntegrity(p.Integrity); err != nil {
		return fmt.Errorf("%s: %v", p.Path, err)
	}
	return nil
}

// splitPath checks that a lock path is node_modules/NAME, repeated, each
// NAME plain or @scope/name, and returns the last NAME.
func splitPath(p string) (string, error) {
	parts := strings.Split(p, "/")
	last := ""
	for i := 0; i < len(parts); {
		if parts[i] != "node_modules" || i+1 >= len(parts) {
			return "", fmt.Errorf("%q: not a node_modules/NAME path (workspaces are not supported)", p)
		}
		n := parts[i+1]
		i += 2
		if strings.HasPrefix(n, "@") {
			if i >= len(parts) {
				return "", fmt.Errorf("%q: scope %s without a package name", p, n)
			}
			n += "/" + parts[i]
			i++
		}
		if err := checkName(n); err != nil {
			return "", fmt.Errorf("%q: %v", p, err)
		}
		last = n
	}
	return last, nil
}

// checkName refuses names that could not be a folder in node_modules:
// npm's own rules are stricter for new names, but old packages break them
// (upper case, for one), and only the path matters here. A leading dot is
// refused too: ".bin" is where npm links bins.
func checkName(n string) error {
	base := n
	if rest, ok := strings.CutPrefix(n, "@"); ok {
		scope, b, ok := strings.Cut(rest, "/")
		if !ok || !namePart(scope) {
			return fmt.Errorf("%q is not a package name", n)
		}
		base = b
	}
	if !namePart(base) {
		return fmt.Errorf("%q is not a package name", n)
	}
	return nil
}

func namePart(s string) bool {
	return s != "" && !strings.HasPrefix(s, ".") && !strings.ContainsAny(s, "/\\\x00") && len(s) <= 214
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonError adds the line of a syntax error to the decoder's message.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := int64(-1)
	if errors.As(err, &se) {
		off = se.Offset
	} else if errors.As(err, &te) {
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	line := 1 + strings.Count(string(data[:off]), "\n")
	return fmt.Errorf("line %d: %v", line, err)
}

package npm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
)

// The platform the image runs: npm's names for it, as packages' os, cpu
// and libc fields use them.
const (
	TargetOS   = "linux"
	TargetCPU  = "x64"
	TargetLibc = "glibc"
)

// Lock file names, in npm's order of preference.
var lockNames = []string{"npm-shrinkwrap.json", "package-lock.json"}

// Config is what an application's package.json tells byz, in its
// "byzantium" object (npm ignores keys it does not know):
//
//	"byzantium": {
//	  "dir": "/opt/thelounge",        // where node_modules is laid out; default /opt/NAME
//	  "omit": ["dev"],                // dev, optional, peer: left out, as npm ci --omit; default ["dev"]
//	  "prebuilt": ["sqlite3"],        // native add-ons used with the linux-x64 glibc .node files they ship
//	  "ignore-scripts": ["core-js"]   // packages whose install scripts the app does not need
//	}
//
// An entry of prebuilt or ignore-scripts is a package name, or
// name@version to allow one version only.
type Config struct {
	Dir           string   `json:"dir"`
	Omit          []string `json:"omit"`
	Prebuilt      []string `json:"prebuilt"`
	IgnoreScripts []string `json:"ignore-scripts"`
}

// App is an application to lay out: a lock, the package.json beside it,
// and the packages the image gets.
type App struct {
	Dir      string // the folder holding the lock
	LockFile string
	Name     string // the package.json's name, else the lock's
	Lock     *Lock
	Config   Config
	// Install lists the packages laid out, sorted by path: those the lock
	// installs on linux-x64-glibc, less the omitted kinds. Bundled ones
	// (InBundle) are in it but come inside their bundler's tarball.
	Install []*Package
	digest  string
}

type packageJSON struct {
	Name                 string            `json:"name"`
	Dependencies         map[string]string `json:"dependencies"`
	DevDependencies      map[string]string `json:"devDependencies"`
	OptionalDependencies map[string]string `json:"optionalDependencies"`
	PeerDependencies     map[string]string `json:"peerDependencies"`
	Byzantium            json.RawMessage   `json:"byzantium"`
}

// FindLock returns the lock file a reference names: the file itself, or
// the npm-shrinkwrap.json or package-lock.json in a folder.
func FindLock(ref string) (string, error) {
	fi, err := os.Stat(ref)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return ref, nil
	}
	for _, n := range lockNames {
		p := filepath.Join(ref, n)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w: no package-lock.json in this folder (make npm-relock writes one from package.json)", ref, fs.ErrNotExist)
}

// LoadApp reads the application that ref names (a folder, or its lock
// file): the lock, the package.json beside it if there is one, and its
// byzantium settings; it checks that the two agree and picks the
// packages to install. Nothing is fetched or read from the cache.
func LoadApp(ref string) (*App, error) {
	lockPath, err := FindLock(ref)
	if err != nil {
		return nil, err
	}
	lockData, err := readFile(lockPath, MaxLockSize)
	if err != nil {
		return nil, err
	}
	lock, err := ParseLock(bytes.NewReader(lockData), lockPath)
	if err != nil {
		return nil, err
	}
	a := &App{Dir: filepath.Dir(lockPath), LockFile: lockPath, Lock: lock, Name: lock.Name}
	pjPath := filepath.Join(a.Dir, "package.json")
	pjData, err := readFile(pjPath, MaxLockSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		pjData = nil
	case err != nil:
		return nil, err
	default:
		if err := a.readPackageJSON(pjPath, pjData); err != nil {
			return nil, err
		}
	}
	if err := a.setDefaults(pjPath); err != nil {
		return nil, err
	}
	if err := a.selectPackages(); err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, b := range [][]byte{lockData, pjData} {
		binary.Write(h, binary.BigEndian, uint64(len(b)))
		h.Write(b)
	}
	a.digest = hex.EncodeToString(h.Sum(nil))
	return a, nil
}

// Digest is the sha256 a module records for the app: of its lock and its
// package.json, which together decide every byte laid out (the tarballs
// are pinned by the lock's integrity).
func (a *App) Digest() string { return a.digest }

func (a *App) readPackageJSON(file string, data []byte) error {
	var pj packageJSON
	if err := json.Unmarshal(data, &pj); err != nil {
		return fmt.Errorf("%s: %v", file, jsonError(data, err))
	}
	if pj.Name != "" {
		a.Name = pj.Name
	}
	if len(pj.Byzantium) > 0 {
		d := json.NewDecoder(bytes.NewReader(pj.Byzantium))
		d.DisallowUnknownFields()
		if err := d.Decode(&a.Config); err != nil {
			return fmt.Errorf("%s: \"byzantium\": %v (keys: dir, omit, prebuilt, ignore-scripts)", file, err)
		}
		// An explicit "omit": [] omits nothing; only an absent one
		// takes the default.
		var raw map[string]json.RawMessage
		if json.Unmarshal(pj.Byzantium, &raw) == nil && raw["omit"] != nil && a.Config.Omit == nil {
			a.Config.Omit = []string{}
		}
	}
	// npm ci refuses a lock that does not match its package.json; so
	// does byz, before anything is fetched.
	root := a.Lock.Root
	for _, c := range []struct {
		kind       string
		pj, locked map[string]string
	}{
		{"dependencies", pj.Dependencies, root.Dependencies},
		{"devDependencies", pj.DevDependencies, root.DevDependencies},
		{"optionalDependencies", pj.OptionalDependencies, root.OptionalDeps},
		{"peerDependencies", pj.PeerDependencies, root.PeerDependencies},
	} {
		if len(c.pj) == 0 && len(c.locked) == 0 {
			continue
		}
		if !reflect.DeepEqual(c.pj, c.locked) {
			return fmt.Errorf("%s: %w: out of date with %s (%s: %s); run make npm-relock",
				a.LockFile, ErrLock, file, c.kind, diffDeps(c.pj, c.locked))
		}
	}
	return nil
}

// diffDeps names the first difference between two dependency maps.
func diffDeps(want, got map[string]string) string {
	for _, k := range sortedKeys(want) {
		if g, ok := got[k]; !ok {
			return fmt.Sprintf("%s %s is not in the lock", k, want[k])
		} else if g != want[k] {
			return fmt.Sprintf("%s: package.json wants %s, the lock has %s", k, want[k], g)
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("the lock has %s, package.json does not", k)
		}
	}
	return "?"
}

func (a *App) setDefaults(pjPath string) error {
	c := &a.Config
	if c.Omit == nil {
		c.Omit = []string{"dev"}
	}
	for _, o := range c.Omit {
		if o != "dev" && o != "optional" && o != "peer" {
			return fmt.Errorf("%s: byzantium.omit: %q: want dev, optional or peer", pjPath, o)
		}
	}
	if c.Dir == "" {
		if a.Name == "" || strings.ContainsAny(a.Name, "/@\\") || strings.HasPrefix(a.Name, ".") {
			return fmt.Errorf("%s: no byzantium.dir, and the name %q does not make one: set \"byzantium\": {\"dir\": \"/opt/NAME\"}", pjPath, a.Name)
		}
		c.Dir = "/opt/" + a.Name
	}
	if !path.IsAbs(c.Dir) || path.Clean(c.Dir) != c.Dir || c.Dir == "/" {
		return fmt.Errorf("%s: byzantium.dir %q: want a clean absolute folder such as /opt/NAME", pjPath, c.Dir)
	}
	for _, list := range []struct {
		key   string
		names []string
	}{{"prebuilt", c.Prebuilt}, {"ignore-scripts", c.IgnoreScripts}} {
		for _, n := range list.names {
			name, _ := splitAllow(n)
			if checkName(name) != nil {
				return fmt.Errorf("%s: byzantium.%s: %q: want a package name or name@version", pjPath, list.key, n)
			}
			if !a.lockHas(n) {
				return fmt.Errorf("%s: byzantium.%s: the lock installs no %s", pjPath, list.key, n)
			}
		}
	}
	return nil
}

// splitAllow splits "name" or "name@version" (names may start with @).
func splitAllow(s string) (name, version string) {
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func allows(list []string, p *Package) bool {
	for _, s := range list {
		n, v := splitAllow(s)
		if n == p.Name && (v == "" || v == p.Version) {
			return true
		}
	}
	return false
}

func (a *App) lockHas(allow string) bool {
	for _, p := range a.Lock.Packages {
		if allows([]string{allow}, p) {
			return true
		}
	}
	return false
}

// selectPackages picks what npm ci would install on the image: omitted
// kinds left out (npm's rules: a devOptional package goes only when both
// dev and optional do), optional packages for other platforms skipped, a
// required one refused, and everything below a skipped package skipped
// with it. A bundled package comes with the package that bundles it.
func (a *App) selectPackages() error {
	omit := map[string]bool{}
	for _, o := range a.Config.Omit {
		omit[o] = true
	}
	var skipped []string
	under := func(p string) bool {
		for _, s := range skipped {
			if strings.HasPrefix(p, s+"/") {
				return true
			}
		}
		return false
	}
	for _, path := range sortedKeys(a.Lock.Packages) {
		p := a.Lock.Packages[path]
		if under(path) {
			skipped = append(skipped, path)
			continue
		}
		if p.InBundle {
			a.Install = append(a.Install, p)
			continue
		}
		if p.Peer && omit["peer"] || p.Dev && omit["dev"] || p.Optional && omit["optional"] ||
			p.DevOptional && omit["dev"] && omit["optional"] {
			skipped = append(skipped, path)
			continue
		}
		if !platformOK(p) {
			if p.Optional || p.DevOptional {
				skipped = append(skipped, path)
				continue
			}
			return fmt.Errorf("%s: %w: %s (%s) is for os %v, cpu %v, libc %v, not the image's %s-%s-%s, and is not optional",
				a.LockFile, ErrLock, p.ID(), path, p.OS, p.CPU, p.Libc, TargetOS, TargetCPU, TargetLibc)
		}
		a.Install = append(a.Install, p)
	}
	return nil
}

func platformOK(p *Package) bool {
	return listOK(TargetOS, p.OS) && listOK(TargetCPU, p.CPU) && listOK(TargetLibc, p.Libc)
}

// listOK is npm-install-checks' rule: no negated entry matches, and a
// positive one does if there are any.
func listOK(v string, list []string) bool {
	if len(list) == 0 || len(list) == 1 && list[0] == "any" {
		return true
	}
	negated, match := 0, false
	for _, e := range list {
		if t, ok := strings.CutPrefix(e, "!"); ok {
			negated++
			if t == v {
				return false
			}
		} else if e == v {
			match = true
		}
	}
	return match || negated == len(list)
}

func readFile(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, max>>20)
	}
	return data, nil
}

package deps

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// module is the repository's module path (go.mod).
const module = "byzantium"

// repoRoot is the repository root, seen from this package's folder (where
// go test runs its tests).
const repoRoot = "../.."

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string // non-test imports, vendor paths resolved
}

// graph is every package of the module and everything it links, for one
// build configuration.
type graph struct {
	pkgs map[string]*pkg
}

var (
	graphsMu sync.Mutex
	graphs   = map[bool]*graph{}
)

// loadGraph runs `go list -deps -json ./...` for linux/amd64 with cgo off
// or on, once per test binary. The shipped binaries are built with
// CGO_ENABLED=0 (Makefile); cgo on is checked too, since a developer's
// `go build` has it on by default and it must not pull anything forbidden in.
func loadGraph(t *testing.T, cgo bool) *graph {
	t.Helper()
	graphsMu.Lock()
	defer graphsMu.Unlock()
	if g := graphs[cgo]; g != nil {
		return g
	}
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,Imports", "./...")
	cmd.Dir = repoRoot
	cgoEnv := "CGO_ENABLED=0"
	if cgo {
		cgoEnv = "CGO_ENABLED=1"
	}
	cmd.Env = append(cmd.Environ(), cgoEnv, "GOOS=linux", "GOARCH=amd64")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps (%s): %v\n%s", cgoEnv, err, stderr.Bytes())
	}
	g := &graph{pkgs: map[string]*pkg{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list -deps (%s): %v", cgoEnv, err)
		}
		g.pkgs[p.ImportPath] = p
	}
	if len(g.pkgs) == 0 {
		t.Fatalf("go list -deps (%s) listed no packages", cgoEnv)
	}
	graphs[cgo] = g
	return g
}

// forEachConfig runs f as a subtest for cgo off and on.
func forEachConfig(t *testing.T, f func(t *testing.T, g *graph)) {
	for _, cgo := range []bool{false, true} {
		name := "CGO_ENABLED=0"
		if cgo {
			name = "CGO_ENABLED=1"
		}
		t.Run(name, func(t *testing.T) { f(t, loadGraph(t, cgo)) })
	}
}

// mustPkg returns the package path, failing the test if the module has no
// such package (a rule naming a binary that moved).
func (g *graph) mustPkg(t *testing.T, path string) *pkg {
	t.Helper()
	p := g.pkgs[path]
	if p == nil {
		t.Fatalf("go list knows no package %s", path)
	}
	return p
}

// walk visits every package from links, breadth first, in import order,
// and returns for each the package it was first reached from: the chains
// walk gives are the shortest ones.
func (g *graph) walk(from string) (order []string, parent map[string]string) {
	parent = map[string]string{from: ""}
	order = []string{from}
	for i := 0; i < len(order); i++ {
		p := g.pkgs[order[i]]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := parent[imp]; !seen {
				parent[imp] = order[i]
				order = append(order, imp)
			}
		}
	}
	return order, parent
}

// chain spells out how walk reached to: "a → b → c", with the module's
// prefix left off its own packages.
func chain(parent map[string]string, to string) string {
	var path []string
	for p := to; p != ""; p = parent[p] {
		path = append(path, short(p))
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return strings.Join(path, " → ")
}

// short leaves the module's prefix off one of its packages.
func short(path string) string {
	return strings.TrimPrefix(path, module+"/")
}

// match reports whether path matches pattern: a package path, or a path
// ending in "/..." for that package and everything beneath it, as go list
// spells it.
func match(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	return path == pattern
}

func matchAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if match(p, path) {
			return true
		}
	}
	return false
}

// modulePkgs lists the module's own packages, sorted.
func (g *graph) modulePkgs() []string {
	var out []string
	for path := range g.pkgs {
		if match(module+"/...", path) {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

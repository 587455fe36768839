package deps

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite cmd/*/deps.txt from go list instead of comparing")

// TestDepsList compares each binary's dependencies with its checked-in
// cmd/<name>/deps.txt, so that a new dependency is a line in the diff a
// reviewer sees. The list is the CGO_ENABLED=0 build's, as the Makefile
// builds the binaries; TestForbidden checks cgo on as well.
func TestDepsList(t *testing.T) {
	g := loadGraph(t, false)
	for _, b := range binaries {
		t.Run(b.name, func(t *testing.T) {
			root := module + "/cmd/" + b.name
			g.mustPkg(t, root)
			got := depsList(g, b.name)
			file := filepath.Join(repoRoot, "cmd", b.name, "deps.txt")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", file)
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v\n(make it with: go test ./ci/deps -run TestDepsList -update)", err)
			}
			if bytes.Equal(got, want) {
				return
			}
			added, removed := lineDiff(string(want), string(got))
			t.Errorf("cmd/%s/deps.txt is not what %s links.\nadded:\n%s\nremoved:\n%s\n"+
				"If the change is meant, refresh the lists and commit them with it:\n"+
				"\tgo test ./ci/deps -run TestDepsList -update",
				b.name, b.name, indent(added), indent(removed))
		})
	}
}

// depsList is the text of cmd/<name>/deps.txt: one package a line,
// sorted, each package outside the standard library followed by the
// packages of the binary that import it. The standard library's internal
// and vendored packages are left out: they follow the Go release, not our
// choices.
func depsList(g *graph, name string) []byte {
	root := module + "/cmd/" + name
	order, _ := g.walk(root)
	in := map[string]bool{}
	for _, p := range order {
		in[p] = true
	}
	importers := map[string][]string{}
	for _, p := range order {
		for _, imp := range g.pkgs[p].Imports {
			if in[imp] {
				importers[imp] = append(importers[imp], p)
			}
		}
	}
	slices.Sort(order)
	var b strings.Builder
	fmt.Fprintf(&b, "# Packages cmd/%s links (go list -deps, CGO_ENABLED=0 GOOS=linux GOARCH=amd64),\n", name)
	b.WriteString("# less the standard library's internal and vendored ones; each package from\n")
	b.WriteString("# outside the standard library names its importers. Checked by ci/deps\n")
	b.WriteString("# TestDepsList; refresh with: go test ./ci/deps -run TestDepsList -update\n")
	for _, p := range order {
		pk := g.pkgs[p]
		if pk.Standard {
			if internalStd(p) {
				continue
			}
			fmt.Fprintf(&b, "%s\n", p)
			continue
		}
		from := importers[p]
		slices.Sort(from)
		from = slices.Compact(from)
		if len(from) == 0 {
			fmt.Fprintf(&b, "%s\n", p)
			continue
		}
		fmt.Fprintf(&b, "%s from %s\n", p, strings.Join(from, ", "))
	}
	return []byte(b.String())
}

// internalStd reports whether a standard package is internal or vendored.
func internalStd(path string) bool {
	return strings.HasPrefix(path, "vendor/") || path == "internal" || strings.HasPrefix(path, "internal/") ||
		strings.Contains(path, "/internal/") || strings.HasSuffix(path, "/internal")
}

// lineDiff lists the lines only in b (added) and only in a (removed).
func lineDiff(a, b string) (added, removed []string) {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	for _, l := range bs {
		if !slices.Contains(as, l) {
			added = append(added, l)
		}
	}
	for _, l := range as {
		if !slices.Contains(bs, l) {
			removed = append(removed, l)
		}
	}
	return added, removed
}

func indent(lines []string) string {
	if len(lines) == 0 {
		return "\t(none)"
	}
	return "\t" + strings.Join(lines, "\n\t")
}

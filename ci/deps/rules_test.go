package deps

import (
	"strconv"
	"testing"
)

// writers are the packages that write media and module images: the build
// host's business, never the node's. modules itself is the module creator
// (its sources and the squashfs writer); modules/entry, hostfs and manifest
// are the node's too and are not listed.
var writers = []string{
	module + "/modules",
	module + "/modules/squashfs",
	module + "/modules/squashfs/...",
	module + "/image/iso9660/...",
	module + "/image/fat/...",
	module + "/image/usbimg/...",
	module + "/image/gpt/...",
	module + "/image/grubpc/...",
	module + "/image/media/...",
	module + "/image/bootloader/...",
	module + "/builder/...",
}

// testOnly is what no shipped binary links: the test framework, the
// browser driver and the CI support packages.
var testOnly = []string{
	"testing",
	"github.com/chromedp/...",
	module + "/ci/browser/...",
	module + "/ci/testenv/...",
	module + "/ci/e2e/...",
	module + "/ci/bench/...",
	module + "/ci/deps/...",
}

// binaries are the three shipped programs and what each must never link,
// however indirectly.
var binaries = []struct {
	name      string
	forbidden []string
	allowed   []string // exceptions to forbidden
	why       string
}{
	{"byz-init", concat(testOnly, writers, []string{
		"net",
		"net/http",
		"crypto/tls",
		module + "/image/...",
		module + "/runtime/daemon/...",
		module + "/runtime/webfront/...",
		// Making save.dats (an ext4 writer, which brought in net) is
		// byz's and byzd's: the init only opens and grows them.
		module + "/runtime/savedat/mkfs/...",
		"github.com/diskfs/...",
	}), nil, "byz-init is PID 1 in the initramfs: it mounts and unlocks, and links no network, TLS, image writer or test code"},
	{"byzd", concat(testOnly, writers, []string{module + "/image/..."}),
		// The clone's wire types: the one part of image byzd links (see
		// the cloneapi rule in layers).
		[]string{module + "/image/clone/cloneapi"},
		"byzd runs on the node: it serves the panel and the API, and builds no images (byz clone does, in its own process)"},
	{"byz", concat(testOnly, []string{
		module + "/runtime/daemon",
		module + "/runtime/initsys",
	}), nil, "byz talks to byzd through its API types and client, and reads the media layout from overlays: it links neither the daemon nor the init"},
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// TestForbidden: no shipped binary links a package it must not. Each
// failure names the shortest import chain that pulls the package in, the
// one to cut.
func TestForbidden(t *testing.T) {
	forEachConfig(t, func(t *testing.T, g *graph) {
		for _, b := range binaries {
			t.Run(b.name, func(t *testing.T) {
				root := module + "/cmd/" + b.name
				g.mustPkg(t, root)
				order, parent := g.walk(root)
				// One report per pattern, for the nearest package it
				// matches: what lies beyond it goes with it.
				for _, pattern := range b.forbidden {
					n, first := 0, ""
					for _, p := range order {
						if match(pattern, p) && !matchAny(b.allowed, p) {
							if n == 0 {
								first = p
							}
							n++
						}
					}
					if n == 0 {
						continue
					}
					more := ""
					if n > 1 {
						more = " (and " + strconv.Itoa(n-1) + " more packages matching " + short(pattern) + ")"
					}
					t.Errorf("%s links %s%s:\n\t%s\n\t(%s)", b.name, short(first), more, chain(parent, first), b.why)
				}
			})
		}
	})
}

// layer is one "never imports up" rule: no package matching from may link
// (directly or through others) a package matching never, unless it also
// matches except. exempt lists packages the rule does not apply to.
type layer struct {
	from, never, except, exempt []string
	why                         string
}

var layers = []layer{
	{
		from:  []string{module + "/builder/...", module + "/image/..."},
		never: []string{module + "/runtime/..."},
		// runtime's leaf libraries: the builder makes save.dat files and
		// clone writes them, with the very code the node opens them with.
		except: []string{
			module + "/runtime/luks2",
			module + "/runtime/savedat",
			module + "/runtime/savedat/mkfs",
			module + "/runtime/loopdev",
			// The mesh settings' rules, so that a spec is refused
			// for a value the node would refuse, and the settings'
			// wire type they check (nodeapi: the API's types and
			// client, which byz links anyway).
			module + "/runtime/mesh/meshcfg",
			module + "/runtime/nodeapi",
			module + "/runtime/tlscert", // nodeapi's client pins certificates with it
		},
		why: "builder and image run on the build host and never import runtime internals (only its leaf libraries luks2, savedat, savedat/mkfs, loopdev, and mesh/meshcfg with the API types it checks)",
	},
	{
		from:   []string{module + "/runtime/..."},
		never:  []string{module + "/builder/...", module + "/image/...", module + "/cmd/..."},
		except: []string{module + "/image/clone/cloneapi"},
		why:    "runtime does not import builder or image (DESIGN.md); byzd hands clone requests over as image/clone/cloneapi's types",
	},
	{
		from:  []string{module + "/modules/..."},
		never: []string{module + "/builder/...", module + "/image/...", module + "/runtime/...", module + "/cmd/..."},
		why:   "modules is the module format, below the builder, the media and the node: modules does not import image (DESIGN.md)",
	},
	{
		from:  []string{module + "/overlays/..."},
		never: []string{module + "/builder/...", module + "/image/...", module + "/runtime/...", module + "/cmd/..."},
		why:   "overlays owns the node's layout contract, which the builder and the init both import: it imports neither",
	},
	{
		from:  []string{module + "/image/clone/cloneapi"},
		never: []string{module + "/...", "github.com/...", "golang.org/..."},
		why:   "image/clone/cloneapi holds the clone's request and progress types, which byzd links: the standard library only",
	},
	{
		from:  []string{module + "/builder/...", module + "/image/...", module + "/modules/...", module + "/overlays/...", module + "/runtime/..."},
		never: []string{module + "/ci/..."},
		// Test support that lives in non-test files, imported by tests only.
		exempt: []string{
			module + "/modules/internal/testtree",
			module + "/modules/npm/npmtest",
			module + "/runtime/webfront/fcgi/fcgitest",
		},
		why: "ci/ is test support and the QEMU harness: only tests, ci/ itself and cmd/byz (byz run qemu) import it",
	},
}

// TestLayers: a package never imports "up". A package is reported once per
// import that leads to a violation, with the chain, unless that import is
// itself under the rule (then it is reported there).
func TestLayers(t *testing.T) {
	forEachConfig(t, func(t *testing.T, g *graph) {
		pkgs := g.modulePkgs()
		for _, l := range layers {
			for _, from := range pkgs {
				if !matchAny(l.from, from) || matchAny(l.exempt, from) {
					continue
				}
				order, parent := g.walk(from)
				reported := map[string]bool{} // by the import of from that leads there
				for _, p := range order[1:] {
					if !matchAny(l.never, p) || matchAny(l.except, p) {
						continue
					}
					hop := p
					for parent[hop] != from {
						hop = parent[hop]
					}
					if reported[hop] || matchAny(l.from, hop) && !matchAny(l.exempt, hop) {
						continue
					}
					reported[hop] = true
					t.Errorf("%s links %s:\n\t%s\n\t(%s)", short(from), short(p), chain(parent, p), l.why)
				}
			}
		}
	})
}

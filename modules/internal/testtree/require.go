// Package testtree builds a directory tree holding every kind of entry a
// module can carry, and compares two trees attribute by attribute. Sources
// and writers (hostfs, squashfs, the pipeline) share it so that "round trip
// the tree and compare" means the same thing everywhere.
//
// Typical use:
//
//	src := t.TempDir()
//	testtree.Build(t, src, testtree.Options{Privileged: true})
//	... write src somewhere and read it back into dst ...
//	testtree.Compare(t, src, dst, testtree.CompareOptions{})
package testtree

import "byzantium/ci/testenv"

// The skip-or-fail rule lives in ci/testenv; these names keep testtree's
// callers in one import.
var (
	InCI        = testenv.InCI
	Unavailable = testenv.Unavailable
	RequireRoot = testenv.RequireRoot
	RequireTool = testenv.RequireTool
)

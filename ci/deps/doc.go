// Package deps holds the repository's dependency rules as tests, in the
// manner of tailscale's depaware and its TestDeps: what each shipped binary
// must never link (TestForbidden), which way packages may import
// (TestLayers, "a package never imports up"), and a checked-in list of each
// binary's dependencies (cmd/*/deps.txt, TestDepsList), so that a new
// dependency shows up as a diff in review. The package has no code of its
// own: everything is in its tests, which read `go list -deps -json`.
//
// Refresh the lists after a deliberate change with
//
//	go test ./ci/deps -run TestDepsList -update
package deps

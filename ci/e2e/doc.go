// Package e2e holds the end-to-end tests (issue 3, "QEMU harness"): they
// build the test spec with the builder package, as `byz build` would, and boot
// the result in QEMU every way a node boots — BIOS and UEFI, CD and disk,
// Secure Boot, a USB stick — asserting byzd's /healthz over HTTPS through
// a forwarded loopback port. The package has no code of its own.
package e2e

// Package e2e holds the end-to-end tests: they build the test spec and the
// default spec with the builder package, as `byz build` would, and boot
// the results in QEMU every way a node boots — BIOS and UEFI, CD and disk,
// Secure Boot, a USB stick — then drive the node as its users do through
// forwarded loopback ports: byzd's API and panel over HTTPS (a real
// browser included), persistence plain and encrypted, services, cloning.
// The package has no code of its own.
package e2e

// Package clone writes a bootable copy of a Byzantium media tree onto a
// stick or into a USB image: the running node's boot media, a media
// folder or a USB image a build made. The copy has the USB layout of
// image/usbimg (GPT, FAT32 ESP with the tree, BIOS boot partition with
// GRUB's core, Secure Boot through the same signed shim and GRUB), taken
// from the source media itself, and identities of its own: new disk and
// partition GUIDs, a new FAT volume ID and a new media ID, which its boot
// configs, its byzantium/media-ID marker and its manifest carry.
//
// Every file taken from the source is checked against the source's
// manifest as it is written (a mismatch names the file); the written
// partition is then read back from the target and every file compared
// with the new manifest, and only then is the partition table written:
// until the very end the target has none, so an interrupted or failed
// clone never leaves a stick that looks bootable.
//
// The package writes and logs nothing on its own: Plan says what would
// be written, Plan.Write writes it, and the caller reads Progress.
package clone

import (
	"errors"
	"fmt"
	"time"

	"byzantium/runtime/luks2"
)

// Errors callers branch on.
var (
	// ErrNotMedia reports a source that is not Byzantium USB media.
	ErrNotMedia = errors.New("clone: not Byzantium USB media")
	// ErrMismatch reports a file that differs from a manifest: a source
	// file from the source's, or a file read back from the target from the
	// clone's.
	ErrMismatch = errors.New("clone: file does not match the manifest")
	// ErrMissing reports a file the source's manifest lists that is not
	// on the source media (removed by hand).
	ErrMissing = errors.New("clone: missing from the source")
	// ErrRefused reports a target the safety checks refuse.
	ErrRefused = errors.New("clone: target refused")
	// ErrSameAsSource reports a target that is the source, or holds it
	// or lives in it: no option overrides it. It is an ErrRefused too.
	ErrSameAsSource = fmt.Errorf("%w, it is the source", ErrRefused)
	// ErrTooSmall reports a target too small for the clone.
	ErrTooSmall = errors.New("clone: target too small")
	// ErrBadOption reports Options that cannot make a clone.
	ErrBadOption = errors.New("clone: bad option")
)

// Secrets are the paths (relative to the root, path.Match patterns, a
// folder taking everything under it) that --with-state leaves out of the
// node's changes unless told otherwise: what makes a node itself and
// what lets someone act as it. A clone makes its own on first boot.
var Secrets = []string{
	"var/lib/byzantium/tls",     // byzd's TLS key and certificate
	"var/lib/byzantium/auth",    // admin credentials and sessions
	"var/lib/byzantium/node-id", // the node's ID
	"var/lib/byzantium/mesh",    // the mesh identity (NeverCopied)
	"etc/ssh/ssh_host_*",        // SSH host keys
	"etc/machine-id",            // the machine ID, where a base has one
	"var/lib/dbus/machine-id",   // D-Bus's copy of it
}

// NeverCopied are the Secrets a clone leaves out even with WithSecrets:
// the mesh identity (addresses, claim) is one node's on the mesh, and two
// nodes with one identity would collide until one re-rolled. A clone is a
// new node on the mesh, whatever else it keeps.
var NeverCopied = []string{"var/lib/byzantium/mesh"}

// Options configures a clone. The zero value clones the media as it is,
// every optional module included, with no save.dat.
type Options struct {
	// Modules names the optional modules to take (by name: "ngircd" for
	// byzantium/optional/100-ngircd.xzm); nil takes them all, an empty
	// non-nil slice none.
	Modules []string
	// SaveSize, when set, makes a fresh save.dat of that many bytes at
	// byzantium/changes/save.dat (a multiple of 1 MiB).
	SaveSize int64
	// Passphrase, when set, makes the save.dat a LUKS2 volume opened by
	// it; KDF is its key derivation (zero: luks2.DefaultKDF).
	Passphrase []byte
	KDF        luks2.KDFParams
	// State, when set, is an overlay upper folder (the node's live one)
	// carried along as a module in byzantium/modules, stacked above the
	// others, without Secrets unless WithSecrets.
	State       string
	WithSecrets bool
	// TempDir holds scratch files (the state module, the save.dat's file
	// system); "" means os.TempDir(). On a node, pick a tmpfs that is not
	// under the overlay: /tmp would land in the very changes being copied.
	TempDir string
	// Now is the time the state module is named after; zero means the
	// clock.
	Now time.Time
}

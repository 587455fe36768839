package initramfs

import (
	"errors"
	"fmt"

	"byzantium/builder/kernel"
)

// The kernel modules an initramfs carries are named here and resolved
// through the kernel's own data (Index.Closure): dependencies, softdeps and
// aliases, so that what a driver asks the kernel for at run time is
// already loaded when it asks (the initramfs has no modprobe). ext4, for
// one, mounts nothing without a crc32c provider, which only its softdep
// names (issue 12: no save.dat worked on the generic kernel without it).
var (
	// RequiredModules must exist in the kernel, as modules or built in:
	// without them no media can be mounted and no persistence used.
	RequiredModules = []string{"squashfs", "overlay", "loop", "isofs", "vfat", "nls_cp437", "nls_iso8859-1",
		"nls_utf8", "ext4"}
	// HardwareModules depend on the kernel flavour: the cloud kernel has
	// no USB storage or SATA, so a missing one is reported, not fatal.
	HardwareModules = []string{"virtio_pci", "virtio_blk", "virtio_scsi", "sr_mod", "sd_mod", "ahci", "ata_piix",
		"nvme", "usb-storage", "uas", "xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "sdhci_pci", "mmc_block",
		// An encrypted save.dat: dm-crypt, and its cipher's algorithms
		// (SaveDatCipher's, added by Modules).
		"dm_crypt",
		// USB keyboards, for the save.dat passphrase prompt (a laptop's
		// own keyboard is PS/2, built into Debian's kernels).
		"usbhid", "hid_generic"}
)

// SaveDatCipher is the dm-crypt cipher of an encrypted save.dat: the one
// runtime/luks2 formats every volume with and maps through dm-crypt (a
// test holds the two together). The kernel instantiates its algorithm on
// demand when byz-init loads the table, so its modules must be loaded
// before. The passphrase's key derivation (argon2, pbkdf2) and the keyslot
// decryption run in byz-init, in Go: they need nothing from the kernel.
const SaveDatCipher = "aes-xts-plain64"

// Modules returns the kernel modules an initramfs carries for the kernel
// ix indexes, in the order byz-init loads them: RequiredModules,
// HardwareModules and what the kernel requests for SaveDatCipher, with
// everything they need. A required module the kernel lacks is an error;
// missing hardware modules come back as note (wrapping
// kernel.ErrMissingModules) with the modules that were found.
func Modules(ix *kernel.Index) (mods []*kernel.Module, note, err error) {
	required, err := ix.Closure(RequiredModules...)
	if err != nil {
		return nil, nil, fmt.Errorf("the kernel lacks modules the boot needs: %w", err)
	}
	alg, err := kernel.DMCryptAlgorithm(SaveDatCipher)
	if err != nil {
		return nil, nil, err
	}
	crypto, err := kernel.CryptoRequests(alg)
	if err != nil {
		return nil, nil, err
	}
	hw, note := ix.Closure(append(append([]string(nil), HardwareModules...), crypto...)...)
	if note != nil && !errors.Is(note, kernel.ErrMissingModules) {
		return nil, nil, note
	}
	seen := map[string]bool{}
	for _, m := range append(required, hw...) {
		if !seen[m.Name] {
			seen[m.Name] = true
			mods = append(mods, m)
		}
	}
	return mods, note, nil
}

// Package bootloader owns what boots the media: the bootloader binaries,
// taken from Debian packages (never from the build host's own /usr/lib,
// so a build is a function of its locked inputs), the isolinux and GRUB
// configurations generated from the boot menu, where each flavour puts
// those files in the media tree, GRUB's BIOS boot code, and the FAT
// image behind the ISO's El Torito EFI entry. image/media lays the tree
// out around them.
//
// Two flavours exist because CDs and sticks boot differently. Both put
// Debian's signed shim at EFI/BOOT/BOOTX64.EFI; shim then loads
// grubx64.efi from its own directory. On the ISO that file is Debian's
// signed CD GRUB (gcdx64, prefix /boot/grub) inside the El Torito image,
// and BIOS boots isolinux. On the USB image it is the signed disk GRUB
// (grubx64, prefix /EFI/debian) on the FAT partition.
package bootloader

import (
	"errors"
	"fmt"
)

// Errors callers branch on.
var (
	// ErrMissingFile reports a bootloader file that a package given to
	// Extract does not hold, or that a flavour needs but no package gave.
	ErrMissingFile = errors.New("bootloader: missing bootloader file")
	// ErrUnknownPackage reports a .deb that provides no bootloader file.
	ErrUnknownPackage = errors.New("bootloader: not a bootloader package")
	// ErrBadMenu reports a menu label or kernel parameter that could change
	// the syntax of a generated config, or a menu that cannot be written
	// or read back.
	ErrBadMenu = errors.New("bootloader: bad boot menu")
	// ErrBadInput reports files that cannot make an EFI image, a flavour
	// that has none, or a bootloader file in a media tree too large to be
	// one.
	ErrBadInput = errors.New("bootloader: bad input")
)

// Flavour chooses the bootloader set that goes on the media.
type Flavour uint8

const (
	// ISO boots BIOS through isolinux (El Torito, boot info table) and
	// UEFI through shim and the signed CD GRUB in an El Torito EFI image.
	ISO Flavour = iota + 1
	// USB boots UEFI through shim and the signed disk GRUB on the FAT
	// partition that holds the whole tree.
	USB
)

func (f Flavour) String() string {
	switch f {
	case ISO:
		return "iso"
	case USB:
		return "usb"
	}
	return fmt.Sprintf("flavour(%d)", uint8(f))
}

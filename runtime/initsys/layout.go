package initsys

// The initramfs layout the builder and the init agree on. This file has no
// build constraints and no imports so that builder/initramfs can use it
// without pulling in the init.
const (
	// ModuleListPath names, relative to the root, the file listing the
	// kernel modules to load at boot, one archive path a line
	// ("lib/modules/6.1.0-56-cloud-amd64/kernel/fs/isofs/isofs.ko"),
	// dependencies first. Blank lines and lines starting with # are
	// ignored.
	ModuleListPath = "etc/byz/modules.load"
	// DevNullPlaceholder is an empty regular file at dev/null in the
	// archive. The kernel opens /dev/console for the init's stdin, stdout
	// and stderr; with no device nodes in the archive that fails, and the
	// Go runtime then opens /dev/null for fds 0-2 or dies before main.
	// devtmpfs is mounted over it, and the init points fds 0-2 at the
	// console as soon as it can.
	DevNullPlaceholder = "dev/null"
	// MediaMarkerPrefix, followed by the media ID, names the (empty) file
	// the builder writes into the media tree; it passes the same ID as
	// byz.media=<ID>, so the init can tell its own media from any other
	// Byzantium stick or CD in the machine.
	MediaMarkerPrefix = "byzantium/media-"
)

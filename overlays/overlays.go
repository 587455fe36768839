// Package overlays is the node's layout contract: where a media tree keeps
// its modules and in which order byz-init stacks them, which of them
// load= and noload= choose, where byz-init leaves mounts and reports
// under /run, and the JSON of those reports. The builder, the clone, the
// CLI, byz-init and byzd all import it, so a path or a folder name is
// spelled once. It makes no system calls and imports only the standard
// library: importing it links nothing of the init.
package overlays

// The media tree, relative to its root.
const (
	// MediaRoot is the folder of the media that holds the modules, the
	// manifest and the persistence store.
	MediaRoot = "byzantium"
	// The module folders of MediaRoot, stacked in this order (see
	// Folders).
	FolderBase     = "base"
	FolderModules  = "modules"
	FolderOptional = "optional"
	// ModuleExt ends a module's file name, in any case.
	ModuleExt = ".xzm"
	// LoadList names optional modules to stack at the next boot, one per
	// line: byzd's "load at next boot" writes it, byz-init adds it to
	// load=.
	LoadList = MediaRoot + "/load"
	// ChangesDir holds the default persistence store; a copy of the
	// media into RAM leaves it out.
	ChangesDir = MediaRoot + "/changes"
	// DefaultSaveDat is the save.dat byz-init uses without changes= when
	// the media holds one and can be written.
	DefaultSaveDat = ChangesDir + "/save.dat"
	// MediaMarkerPrefix, followed by the media ID, names the (empty) file
	// the builder writes into the media tree; it passes the same ID as
	// byz.media=<ID>, so the init can tell its own media from any other
	// Byzantium stick or CD in the machine.
	MediaMarkerPrefix = MediaRoot + "/media-"
	// ManifestPath lists every file of the media with its size and
	// sha256 (image/media writes it); a clone and `byz persist` take a
	// tree holding it for Byzantium media, and byz-init names it when a
	// module does not mount.
	ManifestPath = MediaRoot + "/manifest.json"
	// RootcopyDir is copied over the root after the overlay is mounted,
	// unless norootcopy is given.
	RootcopyDir = MediaRoot + "/rootcopy"
	// BootInfoPath records the boot menu the media was made with, so a
	// clone can write the same menu under its own media ID. It does not
	// embed the ID.
	BootInfoPath = MediaRoot + "/boot.json"
)

// The initramfs the builder writes and byz-init boots from, relative to
// its root.
const (
	// ModuleListPath names the file listing the kernel modules to load
	// at boot, one archive path a line
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
)

// Where byz-init mounts things on the node, relative to the root. They
// stay mounted after the switch to the real root, which byzd and the CLI
// rely on.
const (
	// RunDir holds all of byz-init's mounts; a tmpfs, so scratch files
	// of a clone on the node go there too.
	RunDir = "run/byz"
	// ProbeDir is where each candidate media is mounted while it is
	// looked at.
	ProbeDir = RunDir + "/probe"
	// MediaDir is where the boot media stays mounted once found.
	MediaDir = RunDir + "/media"
	// RAMDir is the tmpfs copy2ram copies the media's byzantium/ into,
	// laid out like the media.
	RAMDir = RunDir + "/copy2ram"
	// LayersDir holds one read-only mount per module, NNN-name.
	LayersDir = RunDir + "/layers"
	// RWDir holds the overlay's upper and work folders: a tmpfs, or the
	// persistence store changes= names.
	RWDir = RunDir + "/rw"
	// UpperDir is the live overlay's upper layer: the node's changes.
	UpperDir = RWDir + "/upper"
	// StoreDir is where changes=EXIT: keeps its store mounted.
	StoreDir = RunDir + "/store"
	// ServicesDir holds byzd's per-service roots.
	ServicesDir = RunDir + "/services"
)

// The reports byz-init (and byzd) leave for byzd and the CLI, relative to
// the root.
const (
	// ReportDir holds the reports.
	ReportDir = "run/byzantium"
	// ModulesJSON lists the stacked layers: a JSON array of Layer.
	ModulesJSON = ReportDir + "/modules.json"
	// PersistenceJSON says where the upper layer lives: a Persistence.
	PersistenceJSON = ReportDir + "/persistence.json"
	// LastSaveJSON is byzd's account of the last save of changes=EXIT:.
	LastSaveJSON = ReportDir + "/last-save.json"
)

// Folders lists the module folders of MediaRoot in stacking order: every
// base/*.xzm, then modules/*.xzm, then the optional/*.xzm that load=
// names. A fresh slice each call, so no caller can reorder the stack for
// the others.
func Folders() []string {
	return []string{FolderBase, FolderModules, FolderOptional}
}

// MarkerPath is the media-relative path of the marker file of the media
// with ID id (MediaMarkerPrefix).
func MarkerPath(id string) string {
	return MediaMarkerPrefix + id
}

// FolderPath is the media-relative path of a module folder
// ("byzantium/base").
func FolderPath(folder string) string {
	return MediaRoot + "/" + folder
}

package overlays

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Layer is one module byz-init stacked: an entry of ModulesJSON.
type Layer struct {
	// Name is the module's name from its manifest, or from its file name.
	Name string `json:"name"`
	// File is the module's path in the media tree
	// ("byzantium/base/000-busybox.xzm").
	File string `json:"file"`
	// Layer is where it is mounted, as the booted system sees it
	// ("/run/byz/layers/000-000-busybox").
	Layer string `json:"layer"`
}

// PersistenceMode says what holds the overlay's upper layer. Its values
// are on the wire (PersistenceJSON, byzd's API) and name the panel's
// translations ("persistence.mode.<mode>"), so they never change.
type PersistenceMode string

const (
	// ModeRAM is no persistence: a tmpfs.
	ModeRAM PersistenceMode = "ram"
	// ModeFresh is a tmpfs because byz.fresh asked for one.
	ModeFresh PersistenceMode = "fresh"
	// ModeSaveDat is an ext4 file system in a file (maybe LUKS2).
	ModeSaveDat PersistenceMode = "savedat"
	// ModeDevice is an ext4 partition.
	ModeDevice PersistenceMode = "device"
	// ModeDir is a folder on a POSIX file system of the media.
	ModeDir PersistenceMode = "dir"
	// ModeExit is a tmpfs saved at shutdown to a store of one of the
	// kinds above (changes=EXIT:), mounted at StoreDir.
	ModeExit PersistenceMode = "exit"
	// ModeUnknown is byzd's word for a report it cannot read.
	ModeUnknown PersistenceMode = "unknown"
)

// Persistence says where the overlay's upper layer lives: what byz-init
// writes to PersistenceJSON for byzd's status (API and panel).
type Persistence struct {
	Mode PersistenceMode `json:"mode"`
	// Store names it: the save.dat's path on the media, the device, the
	// folder.
	Store     string `json:"store,omitempty"`
	Encrypted bool   `json:"encrypted"`
	// Warning, when set, says why the node runs without the persistence
	// it was asked for (or found): it must be shown, never hidden.
	Warning string `json:"warning,omitempty"`
	// Backing is, in ModeExit, the kind of store the changes are saved to
	// (ModeSaveDat, ModeDevice or ModeDir).
	Backing PersistenceMode `json:"backing,omitempty"`
}

// SaveReport is the account of one save of the changes kept in RAM under
// changes=EXIT: (runtime/changes), which byzd keeps at LastSaveJSON and
// shows in its status.
type SaveReport struct {
	Time    time.Time `json:"time"`
	Entries int       `json:"entries"`
	Copied  int       `json:"copied"`
	Removed int       `json:"removed"`
	Bytes   int64     `json:"bytes"`
	Seconds float64   `json:"seconds"`
	Error   string    `json:"error,omitempty"`
}

// ReadPersistence reads the report byz-init left at PersistenceJSON under
// root (the booted system's "/").
func ReadPersistence(root string) (*Persistence, error) {
	b, err := os.ReadFile(filepath.Join(root, PersistenceJSON))
	if err != nil {
		return nil, err
	}
	var p Persistence
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", PersistenceJSON, err)
	}
	return &p, nil
}

package media

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"byzantium/image/bootloader"
	"byzantium/overlays"
)

// BootInfo is the content of byzantium/boot.json (overlays.BootInfoPath),
// the machine-readable record of the boot menu in the media tree: what a
// clone of the media needs to write the same menu under its own media ID.
// It does not embed the ID, so it is part of the payload (and of the
// manifest).
type BootInfo struct {
	Flavour   string      `json:"flavour"`
	Title     string      `json:"title,omitempty"`
	Cmdline   string      `json:"cmdline,omitempty"`
	Entries   []InfoEntry `json:"entries"`
	TimeoutMS int64       `json:"timeout_ms,omitempty"`
	// Locked is Config.Locked: a clone locks its menu as the media did.
	Locked bool `json:"locked,omitempty"`
	// Epoch is the media's SOURCE_DATE_EPOCH (Media.ModTime), Unix
	// seconds.
	Epoch int64 `json:"epoch"`
}

// InfoEntry is one menu entry in boot.json.
type InfoEntry struct {
	Label   string `json:"label"`
	Append  string `json:"append,omitempty"`
	Default bool   `json:"default,omitempty"`
}

// Config returns the menu the media was made with (MediaID left empty).
func (b *BootInfo) Config() bootloader.Config {
	c := bootloader.Config{Title: b.Title, Cmdline: b.Cmdline, Timeout: time.Duration(b.TimeoutMS) * time.Millisecond, Locked: b.Locked}
	for _, e := range b.Entries {
		c.Entries = append(c.Entries, bootloader.Entry(e))
	}
	return c
}

// ModTime returns the media's epoch.
func (b *BootInfo) ModTime() time.Time { return time.Unix(b.Epoch, 0).UTC() }

// newBootInfo records the menu c of flavour f media made at epoch.
func newBootInfo(f bootloader.Flavour, c bootloader.Config, epoch int64) *BootInfo {
	b := &BootInfo{Flavour: f.String(), Title: c.Title, Cmdline: c.Cmdline,
		TimeoutMS: c.Timeout.Milliseconds(), Epoch: epoch, Entries: []InfoEntry{}, Locked: c.Locked}
	for _, e := range c.Entries {
		b.Entries = append(b.Entries, InfoEntry(e))
	}
	return b
}

// bootInfo encodes boot.json for m.
func bootInfo(m *Media, mtime time.Time) ([]byte, error) {
	out, err := json.MarshalIndent(newBootInfo(m.Flavour, m.Menu, mtime.Unix()), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("media: %s: %w", overlays.BootInfoPath, err)
	}
	return append(out, '\n'), nil
}

// ReadBootInfo reads the boot menu record of the media tree in fsys.
// Media made before boot.json existed have their menu read back from the
// GRUB config instead (the flavour from the files present, the epoch from
// the manifest's time): every entry keeps its label and full command line
// but the media ID, and the title, which only isolinux shows, is lost.
func ReadBootInfo(fsys fs.FS) (*BootInfo, error) {
	b, err := fs.ReadFile(fsys, overlays.BootInfoPath)
	if err == nil {
		var bi BootInfo
		if err := json.Unmarshal(b, &bi); err != nil {
			return nil, fmt.Errorf("media: %s: %w", overlays.BootInfoPath, err)
		}
		if len(bi.Entries) == 0 {
			return nil, fmt.Errorf("%w: %s lists no menu entries", ErrBadMedia, overlays.BootInfoPath)
		}
		return &bi, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("media: %w", err)
	}
	cfg, err := fs.ReadFile(fsys, bootloader.GrubCfgDisk)
	if err != nil {
		return nil, fmt.Errorf("%w: no %s and no %s to read the boot menu from: %w", ErrBadMedia, overlays.BootInfoPath, bootloader.GrubCfgDisk, err)
	}
	menu, err := bootloader.ParseGrub(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadMedia, bootloader.GrubCfgDisk, err)
	}
	f := bootloader.USB
	if _, err := fs.Stat(fsys, bootloader.IsolinuxCfg); err == nil {
		f = bootloader.ISO
	}
	var epoch int64
	if fi, err := fs.Stat(fsys, overlays.ManifestPath); err == nil {
		epoch = fi.ModTime().Unix()
	}
	return newBootInfo(f, menu, epoch), nil
}

// LoaderFromFS takes the bootloader files of a USB media tree from the
// tree itself (bootloader.FromMedia). With sums (the media's manifest),
// every file must be listed and match: a mismatch is an ErrChanged error
// naming the file.
func LoaderFromFS(fsys fs.FS, sums map[string]ManifestFile) (*bootloader.Loader, error) {
	var check func(*bootloader.File) error
	if sums != nil {
		check = func(f *bootloader.File) error {
			want, ok := sums[f.Source]
			switch {
			case !ok:
				return fmt.Errorf("%w: %s is not in the media's manifest", ErrChanged, f.Source)
			case want.SHA256 != f.SHA256 || want.Size != int64(len(f.Data)):
				return fmt.Errorf("%w: %s: sha256 %s (%d bytes), the manifest says %s (%d bytes)", ErrChanged, f.Source, f.SHA256, len(f.Data), want.SHA256, want.Size)
			}
			return nil
		}
	}
	return bootloader.FromMedia(fsys, check)
}

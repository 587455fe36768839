package initsys

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/overlays"
)

// TestPersistenceChoices runs Stack on the fake machine with each kind of
// changes= it can fake (no loop devices or dm-crypt here; the QEMU tests
// in ci/e2e do those) and checks the store mounted, the report left for
// byzd, and that a store that fails leaves a warning and a tmpfs, never a
// failed boot.
func TestPersistenceChoices(t *testing.T) {
	tree := map[string]string{"byzantium/media-abc123": "", "byzantium/base/000-a.xzm": "a"}
	for _, tc := range []struct {
		name, cmdline string
		want          overlays.Persistence
		mount         string // a mount that must have happened
	}{
		{"default without a save.dat", "byz.media=abc123", overlays.Persistence{Mode: "ram"}, "tmpfs tmpfs /run/byz/rw"},
		{"always fresh", "byz.media=abc123 byz.fresh changes=/dev/sda1", overlays.Persistence{Mode: "fresh"}, "tmpfs tmpfs /run/byz/rw"},
		{"exit mode without a store", "byz.media=abc123 changes=EXIT:", overlays.Persistence{Mode: "ram", Store: "EXIT:",
			Warning: "changes=EXIT:: name a store after EXIT:"}, "tmpfs tmpfs /run/byz/rw"},
		{"exit mode to a folder on FAT", "byz.media=abc123 changes=EXIT:/byzantium/changes", overlays.Persistence{Mode: "ram", Store: "byzantium/changes",
			Warning: "the media is vfat, which cannot hold owners and modes"}, "tmpfs tmpfs /run/byz/rw"},
		{"no such device", "byz.media=abc123 changes=/dev/nvme9n1", overlays.Persistence{Mode: "ram", Store: "/dev/nvme9n1",
			Warning: "changes=/dev/nvme9n1: no such device"}, "tmpfs tmpfs /run/byz/rw"},
		{"not ext4 so never formatted", "byz.media=abc123 changes=LABEL=HOLIDAY", overlays.Persistence{Mode: "ram", Store: "LABEL=HOLIDAY",
			Warning: "holds no ext4 file system (persistence needs one; it is never formatted for you)"}, "tmpfs tmpfs /run/byz/rw"},
		{"a folder on FAT", "byz.media=abc123 changes=/byzantium/changes", overlays.Persistence{Mode: "ram", Store: "byzantium/changes",
			Warning: "the media is vfat, which cannot hold owners and modes"}, "tmpfs tmpfs /run/byz/rw"},
		{"a folder outside the media", "byz.media=abc123 changes=/../escape", overlays.Persistence{Mode: "ram", Store: "/../escape",
			Warning: "name a folder or a .dat file inside the boot media"}, "tmpfs tmpfs /run/byz/rw"},
		{"the media's root", "byz.media=abc123 changes=/", overlays.Persistence{Mode: "ram", Store: "/",
			Warning: "name a folder or a .dat file inside the boot media"}, "tmpfs tmpfs /run/byz/rw"},
		{"a missing save.dat", "byz.media=abc123 changes=/byzantium/changes/mine.dat", overlays.Persistence{Mode: "ram",
			Store: "byzantium/changes/mine.dat", Warning: "save.dat byzantium/changes/mine.dat"}, "tmpfs tmpfs /run/byz/rw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, cfg, st := machine(t, tc.cmdline, tree)
			if _, err := Stack(cfg, st); err != nil {
				t.Fatalf("Stack: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(m.root, overlays.PersistenceJSON))
			if err != nil {
				t.Fatal(err)
			}
			var got overlays.Persistence
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			warn := got.Warning
			got.Warning, tc.want.Warning = "", strings.TrimSpace(tc.want.Warning)
			if got != (overlays.Persistence{Mode: tc.want.Mode, Store: tc.want.Store, Encrypted: tc.want.Encrypted}) ||
				(tc.want.Warning == "") != (warn == "") || !strings.Contains(warn, tc.want.Warning) {
				t.Errorf("persistence %s (warning %q), want %+v", b, warn, tc.want)
			}
			found := false
			for _, mt := range m.mounts {
				found = found || mt == tc.mount
			}
			if !found {
				t.Errorf("no %q among the mounts %q", tc.mount, m.mounts)
			}
		})
	}
}

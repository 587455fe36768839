package media

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"byzantium/image/bootloader"
)

// goldenConfig is image/bootloader's golden menu (its testdata/README.md).
func goldenConfig() bootloader.Config {
	return bootloader.Config{
		Cmdline: "console=tty0 console=ttyS0,115200",
		MediaID: "0123456789abcdef",
		Entries: bootloader.StandardMenu("Byzantium"),
	}
}

// TestLockedMenu: a locked menu keeps its entries bootable but not
// editable (isolinux ALLOWOPTIONS 0 and NOESCAPE 1, GRUB with no
// superuser and every entry --unrestricted); an unlocked one has none of
// that. boot.json and, for older media, grub.cfg carry the lock to clones.
func TestLockedMenu(t *testing.T) {
	isoLock := []string{"\nALLOWOPTIONS 0\n", "\nNOESCAPE 1\n"}
	grubLock := []string{"\nset superusers=\"\"\nexport superusers\n", "menuentry 'Byzantium' --unrestricted {\n",
		"menuentry 'Byzantium (debug)' --unrestricted {\n"}
	for _, locked := range []bool{false, true} {
		c := goldenConfig()
		c.Locked = locked
		iso, err := bootloader.Isolinux(c)
		must(t, err)
		grub, err := bootloader.Grub(c)
		must(t, err)
		for _, want := range isoLock {
			if strings.Contains(string(iso), want) != locked {
				t.Errorf("locked=%v: isolinux.cfg has %q: %v\n%s", locked, want, !locked, iso)
			}
		}
		for _, want := range grubLock {
			if strings.Contains(string(grub), want) != locked {
				t.Errorf("locked=%v: grub.cfg has %q: %v\n%s", locked, want, !locked, grub)
			}
		}
		// Every entry is --unrestricted when locked: an entry without it
		// would ask for a password nobody has.
		if n, m := strings.Count(string(grub), "menuentry "), strings.Count(string(grub), "--unrestricted"); locked && n != m {
			t.Errorf("%d entries, %d unrestricted:\n%s", n, m, grub)
		}
		if !strings.HasPrefix(string(iso), "SERIAL 0 115200\n") {
			t.Errorf("isolinux.cfg must start with SERIAL:\n%s", iso)
		}

		// A clone writes the menu again from boot.json, or from grub.cfg.
		m := testMedia(t, bootloader.USB)
		m.Menu.Locked = locked
		tr, err := Plan(m)
		must(t, err)
		bi, err := ReadBootInfo(os.DirFS(extractTree(t, tr)))
		must(t, err)
		if got := bi.Config(); !reflect.DeepEqual(got, m.Menu) {
			t.Errorf("locked=%v: boot.json gives %+v, want %+v", locked, got, m.Menu)
		}
		bi, err = ReadBootInfo(fstest.MapFS{bootloader.GrubCfgDisk: {Data: grub}})
		must(t, err)
		if bi.Locked != locked || len(bi.Entries) != len(c.Entries) {
			t.Errorf("locked=%v: from grub.cfg: %+v", locked, bi)
		}
	}
}

package blockdev

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSys lays out a sysfs the way a node sees it:
//
//	sda      SATA disk, serial in SCSI VPD page 0x80, sda1 a partition
//	sdb      USB stick behind a bridge: removable=0, serial only on the USB device
//	sdc      USB card reader, removable=1, no card (size 0)
//	vda      virtio disk, serial on the disk
//	nvme0n1  NVMe disk, serial on the controller
//	loop0, sr0, dm-0, zram0  not disks to list
func fakeSys(t *testing.T) Sys {
	t.Helper()
	root := t.TempDir()
	w := func(p, s string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(from, to string) {
		t.Helper()
		from = filepath.Join(root, from)
		os.MkdirAll(filepath.Dir(from), 0o755)
		rel, _ := filepath.Rel(filepath.Dir(from), filepath.Join(root, to))
		if err := os.Symlink(rel, from); err != nil {
			t.Fatal(err)
		}
	}
	disk := func(name, dev, dir string, attrs map[string]string) {
		for k, v := range attrs {
			w(dir+"/"+k, v)
		}
		link("sys/block/"+name, dir)
		link("sys/dev/block/"+dev, dir)
	}
	sata := "sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda"
	disk("sda", "8:0", sata, map[string]string{"size": "1048576\n", "removable": "0\n", "ro": "0\n",
		"device/vendor": "ATA     \n", "device/model": "Samsung SSD\n", "device/vpd_pg80": "\x00\x80\x00\x04S1XY\x00\x00junk"})
	w(sata+"/sda1/partition", "1\n")
	w(sata+"/sda1/size", "2048\n")
	link("sys/dev/block/8:1", sata+"/sda1")
	usbDev := "sys/devices/pci0000:00/0000:00:14.0/usb1/1-1"
	w(usbDev+"/idVendor", "0781\n")
	w(usbDev+"/serial", "4C530001\n")
	disk("sdb", "8:16", usbDev+"/1-1:1.0/host2/target2:0:0/2:0:0:0/block/sdb", map[string]string{
		"size": "16777216\n", "removable": "0\n", "ro": "1\n", "device/vendor": "SanDisk \n", "device/model": "Cruzer\n"})
	disk("sdc", "8:32", "sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host3/target3:0:0/3:0:0:0/block/sdc",
		map[string]string{"size": "0\n", "removable": "1\n"})
	disk("vda", "254:0", "sys/devices/pci0000:00/0000:00:05.0/virtio2/block/vda", map[string]string{"size": "2097152\n", "removable": "0\n", "serial": "VIRTIO-7\n"})
	disk("nvme0n1", "259:0", "sys/devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1", map[string]string{"size": "4194304\n", "removable": "0\n", "device/serial": "NV-9 \n"})
	for _, n := range []string{"loop0", "sr0", "dm-0", "zram0"} {
		disk(n, "1:"+n, "sys/devices/virtual/block/"+n, map[string]string{"size": "100\n"})
	}
	return Sys{Root: root}
}

func TestList(t *testing.T) {
	sys := fakeSys(t)
	got, err := sys.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string]Disk{}
	for _, d := range got {
		names = append(names, d.Name)
		byName[d.Name] = d
	}
	if strings.Join(names, " ") != "nvme0n1 sda sdb vda" {
		t.Fatalf("listed %v, want nvme0n1 sda sdb vda", names)
	}
	for _, tc := range []struct {
		name                           string
		size                           int64
		model, serial                  string
		removable, usb, ro, detachable bool
	}{
		{"sda", 512 << 20, "Samsung SSD", "S1XY", false, false, false, false},
		{"sdb", 8 << 30, "Cruzer", "4C530001", false, true, true, true},
		{"vda", 1 << 30, "", "VIRTIO-7", false, false, false, false},
		{"nvme0n1", 2 << 30, "", "NV-9", false, false, false, false},
	} {
		d := byName[tc.name]
		if d.Path != "/dev/"+tc.name || d.Size != tc.size || d.Model != tc.model || d.Serial != tc.serial ||
			d.Removable != tc.removable || d.USB != tc.usb || d.ReadOnly != tc.ro || d.Detachable() != tc.detachable {
			t.Errorf("%s: %+v (detachable %v), want %+v", tc.name, d, d.Detachable(), tc)
		}
	}
}

func TestByNumber(t *testing.T) {
	sys := fakeSys(t)
	d, err := sys.ByNumber(8, 16)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "sdb" || d.Vendor != "SanDisk" || !strings.HasSuffix(d.SysDir, "/block/sdb") || !d.Detachable() {
		t.Errorf("8:16 = %+v", d)
	}
	// A card reader without a card is still a disk when named.
	if d, err := sys.ByNumber(8, 32); err != nil || d.Size != 0 || !d.Removable {
		t.Errorf("8:32 = %+v, %v", d, err)
	}
	_, err = sys.ByNumber(8, 1)
	if !errors.Is(err, ErrPartition) || err.Error() != "/dev/sda1 is a partition: name the whole disk (/dev/sda)" {
		t.Errorf("8:1: %v, want ErrPartition", err)
	}
	if _, err := sys.ByNumber(8, 99); err == nil || errors.Is(err, ErrPartition) {
		t.Errorf("8:99: %v, want not in sysfs", err)
	}
}

// TestListNoSysfs: no /sys/block is an error, not an empty machine.
func TestListNoSysfs(t *testing.T) {
	if _, err := (Sys{Root: t.TempDir()}).List(); err == nil {
		t.Error("List without sysfs: no error")
	}
}

// TestSysfsFolders: the attributes the clone's checks follow from a file
// system down to its disks, on the same fake sysfs.
func TestSysfsFolders(t *testing.T) {
	sys := fakeSys(t)
	sda, err := filepath.EvalSymlinks(sys.path("sys/block/sda"))
	if err != nil {
		t.Fatal(err)
	}
	if IsPartition(sda) || !IsPartition(filepath.Join(sda, "sda1")) {
		t.Errorf("IsPartition: sda %v, sda1 %v", IsPartition(sda), IsPartition(filepath.Join(sda, "sda1")))
	}
	if got := Partitions(sda); len(got) != 1 || filepath.Base(got[0]) != "sda1" {
		t.Errorf("Partitions(sda) = %v, want sda1 alone", got)
	}
	if got := Partitions(filepath.Join(sda, "nothing")); got != nil {
		t.Errorf("Partitions of a missing folder = %v", got)
	}
	if ma, mi, ok := Number(filepath.Join(sda, "sda1")); ok {
		t.Errorf("sda1 has no dev attribute in the fake, got %d:%d", ma, mi)
	}
	os.WriteFile(filepath.Join(sda, "dev"), []byte("8:0\n"), 0o644)
	if ma, mi, ok := Number(sda); !ok || ma != 8 || mi != 0 {
		t.Errorf("Number(sda) = %d:%d %v, want 8:0", ma, mi, ok)
	}
	loop, _ := filepath.EvalSymlinks(sys.path("sys/block/loop0"))
	if LoopBacking(loop) != "" {
		t.Errorf("an unbound loop device has a backing file")
	}
	os.MkdirAll(filepath.Join(loop, "loop"), 0o755)
	os.WriteFile(filepath.Join(loop, "loop/backing_file"), []byte("/srv/byzantium-usb.img (deleted)\n"), 0o644)
	if got := LoopBacking(loop); got != "/srv/byzantium-usb.img (deleted)" {
		t.Errorf("LoopBacking = %q", got)
	}
	if Attr(sda, "device/model") != "Samsung SSD" || Attr(sda, "nothing") != "" {
		t.Errorf("Attr: %q, %q", Attr(sda, "device/model"), Attr(sda, "nothing"))
	}
}

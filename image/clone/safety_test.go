package clone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSys builds a sysfs, /proc and /dev the way a node sees them:
//
//	sda  SATA disk, sda1 holds the boot media (/run/byz/media)
//	sdb  USB stick (removable=0 behind its bridge), sdb1 mounted at /media/stick
//	sdc  USB stick, removable=1, idle: the one to clone to
//	sdd  SATA disk, idle, not removable
//	sde  USB stick of 16 MiB
//	sdf  USB disk holding the file a loop device mounts at /mnt/loop
//	sdg  USB disk under a device-mapper device mounted at /home
//	sdh  USB disk whose partition an unlocked (unmounted) dm device holds
//	sdi  USB disk with a swap partition
//	sdj  USB stick carrying this node's media, nothing mounted (copy2ram)
//	sdk  USB stick with its write-protect switch on
//	vda  virtio disk with a serial, removable=0
type fakeDisk struct {
	name      string
	major     int
	path      string // under sys/devices
	sectors   int64
	removable bool
	ro        bool
	parts     int
	model     string
	serial    string // as SCSI VPD page 0x80
}

func fakeSys(t *testing.T, bootID string, markerImage string) System {
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
	usb := func(n int) string {
		return fmt.Sprintf("sys/devices/pci0000:00/0000:00:14.0/usb1/1-%d/1-%d:1.0/host%d/target%d:0:0/%d:0:0:0/block", n, n, n+2, n+2, n+2)
	}
	sata := func(n int) string {
		return fmt.Sprintf("sys/devices/pci0000:00/0000:00:1f.2/ata%d/host%d/target%d:0:0/%d:0:0:0/block", n, n, n, n)
	}
	disks := []fakeDisk{
		{"sda", 8, sata(1), 500 << 21, false, false, 2, "Samsung SSD", "S1"},
		{"sdb", 8, usb(1), 16 << 21, false, false, 1, "Cruzer", "B1"},
		{"sdc", 8, usb(2), 8 << 21, true, false, 1, "Ultra Fit", "4C530001"},
		{"sdd", 8, sata(2), 1000 << 21, false, false, 0, "WDC", "W1"},
		{"sde", 8, usb(3), 32768, true, false, 0, "Tiny", "T1"},
		{"sdf", 8, usb(4), 64 << 21, true, false, 1, "Ext", "F1"},
		{"sdg", 8, usb(5), 64 << 21, true, false, 1, "Ext", "G1"},
		{"sdh", 8, usb(6), 64 << 21, true, false, 1, "Ext", "H1"},
		{"sdi", 8, usb(7), 64 << 21, true, false, 2, "Ext", "I1"},
		{"sdj", 8, usb(8), 8 << 21, true, false, 1, "Old stick", "J1"},
		{"sdk", 8, usb(9), 8 << 21, true, true, 0, "Locked", "K1"},
		{"vda", 254, "sys/devices/pci0000:00/0000:00:05.0/virtio2/block", 8 << 21, false, false, 0, "", ""},
	}
	minor := map[int]int{}
	for _, d := range disks {
		dir := d.path + "/" + d.name
		w(dir+"/size", fmt.Sprint(d.sectors))
		w(dir+"/removable", map[bool]string{false: "0\n", true: "1\n"}[d.removable])
		w(dir+"/ro", map[bool]string{false: "0\n", true: "1\n"}[d.ro])
		if d.model != "" {
			w(dir+"/device/vendor", "ACME    \n")
			w(dir+"/device/model", d.model+"\n")
			w(dir+"/device/vpd_pg80", "\x00\x80\x00"+string(rune(len(d.serial)))+d.serial)
		}
		if d.name == "vda" {
			w(dir+"/serial", "VIRTIO-7\n")
		}
		os.MkdirAll(filepath.Join(root, dir, "holders"), 0o755)
		link("sys/class/block/"+d.name, dir)
		link(fmt.Sprintf("sys/dev/block/%d:%d", d.major, minor[d.major]), dir)
		base := minor[d.major]
		for i := 1; i <= d.parts; i++ {
			pd := fmt.Sprintf("%s/%s%d", dir, d.name, i)
			w(pd+"/partition", fmt.Sprint(i))
			w(pd+"/size", fmt.Sprint(d.sectors/2))
			os.MkdirAll(filepath.Join(root, pd, "holders"), 0o755)
			link(fmt.Sprintf("sys/class/block/%s%d", d.name, i), pd)
			link(fmt.Sprintf("sys/dev/block/%d:%d", d.major, base+i), pd)
		}
		minor[d.major] += 16
		w("dev/"+d.name, "")
	}
	// Stacked devices: loop0 on a file of sdf1, dm-0 on sdg1 (mounted),
	// dm-1 on sdh1 (not mounted).
	virt := "sys/devices/virtual/block/"
	w(virt+"loop0/size", "1000")
	w(virt+"loop0/loop/backing_file", "/mnt/f/disk.img\n")
	link("sys/class/block/loop0", virt+"loop0")
	link("sys/dev/block/7:0", virt+"loop0")
	for _, dm := range []struct{ name, slave, dev string }{{"dm-0", "sdg1", "253:0"}, {"dm-1", "sdh1", "253:1"}} {
		w(virt+dm.name+"/size", "1000")
		link(virt+dm.name+"/slaves/"+dm.slave, "sys/class/block/"+dm.slave)
		link("sys/class/block/"+dm.name, virt+dm.name)
		link("sys/dev/block/"+dm.dev, virt+dm.name)
		hd, _ := filepath.EvalSymlinks(filepath.Join(root, "sys/class/block", dm.slave))
		os.MkdirAll(filepath.Join(hd, "holders", dm.name), 0o755)
	}
	w("proc/self/mountinfo", strings.Join([]string{
		"21 1 0:19 / /run rw - tmpfs tmpfs rw",
		"30 21 8:1 / /run/byz/media ro - vfat /dev/sda1 ro",
		"31 1 8:17 / /media/stick rw - vfat /dev/sdb1 rw",
		"32 1 8:81 / /mnt/f rw - ext4 /dev/sdf1 rw",
		"33 1 7:0 / /mnt/loop rw - ext4 /dev/loop0 rw",
		"34 1 253:0 / /home rw - ext4 /dev/mapper/home rw",
		`35 1 0:40 / /mnt/with\040space rw - tmpfs tmpfs rw`,
	}, "\n")+"\n")
	w("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/sdi2\tpartition\t1000\t0\t-2\n")
	w("proc/cmdline", "console=ttyS0 byz.media="+bootID+"\n")
	if markerImage != "" {
		b, err := os.ReadFile(markerImage)
		if err != nil {
			t.Fatal(err)
		}
		w("dev/sdj", string(b))
	}
	return System{Root: root}
}

// TestSafety runs the refusals over the fake machine.
func TestSafety(t *testing.T) {
	m := sourceMedia(t)
	sys := fakeSys(t, m.id, m.img)
	dev := map[string][2]uint32{"sda": {8, 0}, "sda1": {8, 1}, "sdb": {8, 16}, "sdc": {8, 32}, "sdd": {8, 48}, "sde": {8, 64},
		"sdf": {8, 80}, "sdg": {8, 96}, "sdh": {8, 112}, "sdi": {8, 128}, "sdj": {8, 144}, "sdk": {8, 160}, "vda": {254, 0}}
	const need = 200 << 20
	for _, tc := range []struct {
		dev   string
		force bool
		want  error
		why   string // in the error
	}{
		{"sdc", false, nil, ""},
		{"sda", true, ErrRefused, "the node booted from it: /dev/sda1 is mounted at /run/byz/media"},
		{"sda1", false, ErrRefused, "is a partition: name the whole disk (/dev/sda)"},
		{"sdb", true, ErrRefused, "/dev/sdb1 is mounted at /media/stick"},
		{"sdd", false, ErrRefused, "not a removable disk"},
		{"sdd", true, nil, ""},
		{"sde", false, ErrTooSmall, "has 16.0 MiB, the clone needs 200.0 MiB"},
		{"sdf", true, ErrRefused, "/dev/sdf1 is mounted at /mnt/loop (through /dev/loop0)"},
		{"sdg", true, ErrRefused, "/dev/sdg1 is mounted at /home (through /dev/dm-0)"},
		{"sdh", true, ErrRefused, "held by /dev/dm-1 (on /dev/sdh1)"},
		{"sdi", true, ErrRefused, "/dev/sdi2 is swap"},
		{"sdj", true, ErrRefused, "holds this node's own boot media (byzantium/media-" + m.id + ")"},
		{"sdk", true, ErrRefused, "read-only"},
		{"vda", false, ErrRefused, "not a removable disk"},
	} {
		t.Run(fmt.Sprintf("%s force=%v", tc.dev, tc.force), func(t *testing.T) {
			d, err := sys.InspectDev(dev[tc.dev][0], dev[tc.dev][1])
			if err == nil {
				err = sys.Check(d, need, tc.force)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("err = %v, want %v saying %q", err, tc.want, tc.why)
			}
		})
	}
	d, err := sys.InspectDev(8, 32)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/dev/sdc: ACME Ultra Fit, serial 4C530001, 8.0 GiB (8589934592 bytes), USB"; d.String() != want || !d.Removable {
		t.Errorf("sdc: %q, want %q", d, want)
	}
	v, err := sys.InspectDev(254, 0)
	if err != nil || v.Serial != "VIRTIO-7" || v.USB || v.Removable {
		t.Errorf("vda: %+v %v", v, err)
	}
	if got := unescape(`/mnt/with\040space`); got != "/mnt/with space" {
		t.Errorf("unescape = %q", got)
	}
}

package initsys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"byzantium/overlays"

	"golang.org/x/sys/unix"
)

// DefaultDelay is how long the media search waits for the media to show
// up when delay= is not given: USB sticks take seconds to enumerate.
const DefaultDelay = 10 * time.Second

// pollInterval is how often the search looks at /sys/block again.
const pollInterval = 250 * time.Millisecond

// Media is the boot media the init found and mounted.
type Media struct {
	Dev    string // "/dev/vda1"
	FSType string // "vfat", "iso9660", "ext4"
	Dir    string // where it is mounted, under the root
}

// fsInfo is what sniffing a device's first blocks tells. UUID is spelt
// as blkid (and so /dev/disk/by-uuid and fstab) spell it.
type fsInfo struct {
	Type, Label, UUID string
}

// sniffLen covers every superblock sniff reads (ISO 9660's primary
// volume descriptor is at 32 KiB).
const sniffLen = 32768 + 2048

// sniff recognises the filesystems the media can carry from their
// superblocks. Trying mount(2) with every type instead would do as well
// but makes the kernel log a complaint per failed type and device, and
// the search retries for seconds.
func sniff(r io.ReaderAt) (fsInfo, bool) {
	b := make([]byte, sniffLen)
	n, err := r.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fsInfo{}, false
	}
	b = b[:n]
	field := func(off, n int) string {
		if len(b) < off+n {
			return ""
		}
		return strings.TrimRight(string(bytes.TrimRight(b[off:off+n], "\x00")), " ")
	}
	// ISO 9660 first: an isohybrid image also carries an MBR signature.
	if len(b) >= 32768+72 && string(b[32769:32774]) == "CD001" {
		return fsInfo{Type: "iso9660", Label: field(32768+40, 32), UUID: isoUUID(b)}, true
	}
	// ext2/3/4: the superblock is at 1024, its magic at offset 56.
	if len(b) >= 1024+136 && binary.LittleEndian.Uint16(b[1024+56:]) == 0xEF53 {
		u := b[1024+104 : 1024+120]
		uuid := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		return fsInfo{Type: "ext4", Label: field(1024+120, 16), UUID: uuid}, true
	}
	if len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA && binary.LittleEndian.Uint16(b[11:]) != 0 {
		label, serial := "", uint32(0)
		switch {
		case string(b[82:87]) == "FAT32":
			label, serial = field(71, 11), binary.LittleEndian.Uint32(b[67:])
		case string(b[54:57]) == "FAT":
			label, serial = field(43, 11), binary.LittleEndian.Uint32(b[39:])
		default:
			return fsInfo{}, false // an MBR or GPT protective MBR, not a filesystem
		}
		if label == "NO NAME" {
			label = ""
		}
		return fsInfo{Type: "vfat", Label: label, UUID: fmt.Sprintf("%04X-%04X", serial>>16, serial&0xffff)}, true
	}
	return fsInfo{}, false
}

// isoUUID is what blkid calls an ISO 9660 filesystem's UUID: the primary
// volume descriptor's creation time, "2024-05-06-07-08-09-00" (the
// modification time when the creation time is unset).
func isoUUID(b []byte) string {
	const pvd = 32768
	for _, off := range []int{pvd + 813, pvd + 830} {
		if len(b) < off+16 {
			return ""
		}
		d := string(b[off : off+16])
		if strings.Trim(d, "0") == "" || strings.TrimLeft(d, "0123456789") != "" {
			continue
		}
		return d[0:4] + "-" + d[4:6] + "-" + d[6:8] + "-" + d[8:10] + "-" + d[10:12] + "-" + d[12:14] + "-" + d[14:16]
	}
	return ""
}

// skipDevice says which /sys/block entries never hold the media: loop
// devices (the init's own modules), RAM disks, and floppies, which take
// seconds to time out.
func skipDevice(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "fd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// blockCandidates lists the block devices under root/sys/block that may
// hold the media, in the order they are tried: CD drives first (an ISO
// boot is the common case), then the other disks, each disk's partitions
// before the disk itself (a superfloppy stick has no partition table).
// Devices of size 0 (an empty CD tray) are left out.
func blockCandidates(root string) []string {
	sysBlock := filepath.Join(root, "sys/block")
	entries, _ := os.ReadDir(sysBlock)
	var disks []string
	for _, d := range entries {
		if !skipDevice(d.Name()) {
			disks = append(disks, d.Name())
		}
	}
	sort.SliceStable(disks, func(i, j int) bool {
		a, b := disks[i], disks[j]
		if cdA, cdB := strings.HasPrefix(a, "sr"), strings.HasPrefix(b, "sr"); cdA != cdB {
			return cdA
		}
		return naturalLess(a, b)
	})
	var out []string
	for _, disk := range disks {
		var parts []string
		children, _ := os.ReadDir(filepath.Join(sysBlock, disk))
		for _, c := range children {
			dir := filepath.Join(sysBlock, disk, c.Name())
			if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil && hasSize(dir) {
				parts = append(parts, c.Name())
			}
		}
		sort.Slice(parts, func(i, j int) bool { return naturalLess(parts[i], parts[j]) })
		out = append(out, parts...)
		if hasSize(filepath.Join(sysBlock, disk)) {
			out = append(out, disk)
		}
	}
	return out
}

// naturalLess orders sda before sdb before sdaa, and sda2 before sda10.
func naturalLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func hasSize(sysDir string) bool {
	b, err := os.ReadFile(filepath.Join(sysDir, "size"))
	if err != nil {
		return false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return err == nil && n > 0
}

// mediaMatch decides whether a mounted candidate is the media; why says
// what it holds when it is not.
type mediaMatch func(dir string, info fsInfo) (ok bool, why string)

// markerMatch accepts the media carrying byzantium/media-<id>, or, with
// no ID on the command line, any Byzantium media.
func markerMatch(id string) mediaMatch {
	return func(dir string, _ fsInfo) (bool, string) {
		if id != "" {
			if _, err := os.Stat(filepath.Join(dir, overlays.MediaMarkerPrefix+id)); err == nil {
				return true, ""
			}
		}
		found, _ := filepath.Glob(filepath.Join(dir, overlays.MediaMarkerPrefix+"*"))
		if len(found) == 0 {
			return false, "no " + overlays.MediaMarkerPrefix + "* marker"
		}
		if id == "" {
			return true, ""
		}
		return false, "a different media: " + strings.TrimPrefix(filepath.Base(found[0]), "media-")
	}
}

// treeMatch accepts anything with a byzantium/ folder: from= names the
// device, so a missing or different marker (modules copied from another
// build) does not matter.
func treeMatch(dir string, _ fsInfo) (bool, string) {
	if st, err := os.Stat(filepath.Join(dir, "byzantium")); err == nil && st.IsDir() {
		return true, ""
	}
	return false, "no byzantium/ folder"
}

// findMedia looks for the boot media until it is found or the delay has
// passed, mounts it read-only at overlays.MediaDir and returns it.
func (s *stacker) findMedia() (*Media, error) {
	from := s.cmd.From
	id := s.cmd.Byz["media"]
	delay := s.cmd.Delay
	if delay == 0 {
		delay = DefaultDelay
	}
	var (
		only  func(name string, info fsInfo) bool
		match = markerMatch(id)
		what  = "no boot media with " + overlays.MediaMarkerPrefix + id
	)
	if id == "" {
		what = "no Byzantium boot media"
		s.logf("warning: no byz.media= on the command line: taking the first Byzantium media found")
	}
	switch {
	case from == "":
	case strings.HasPrefix(from, "/dev/"):
		dev := strings.TrimPrefix(from, "/dev/")
		only = func(name string, _ fsInfo) bool { return name == dev }
		match, what = treeMatch, "from="+from+" has no usable Byzantium media"
	case strings.HasPrefix(from, "LABEL="):
		label := strings.TrimPrefix(from, "LABEL=")
		only = func(_ string, info fsInfo) bool { return strings.EqualFold(info.Label, label) }
		match, what = treeMatch, "no filesystem labelled "+label+" holds Byzantium media"
	case strings.HasPrefix(from, "UUID="):
		uuid := strings.TrimPrefix(from, "UUID=")
		only = func(_ string, info fsInfo) bool { return info.UUID != "" && strings.EqualFold(info.UUID, uuid) }
		match, what = treeMatch, "no filesystem with UUID "+uuid+" holds Byzantium media"
	default:
		// A folder or an ISO file on some device are Porteus forms the
		// init does not handle yet.
		return nil, &FatalError{
			Err:  fmt.Errorf("from=%s: only from=/dev/DEVICE, from=LABEL=NAME and from=UUID=ID are supported so far", from),
			Hint: "boot with from=/dev/sdb1 (the partition holding byzantium/), from=LABEL=BYZANTIUM or from=UUID= (as blkid shows it)",
		}
	}

	tried := map[string]string{} // device → what it holds, for the error
	var order []string
	deadline := time.Now().Add(delay)
	for {
		for _, name := range blockCandidates(s.root) {
			if _, done := tried[name]; done {
				continue
			}
			m, why, final := s.tryDevice(name, only, match)
			if m != nil {
				return m, nil
			}
			if final {
				tried[name] = why
				order = append(order, name)
				s.debugf("media: /dev/%s: %s", name, why)
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(pollInterval)
	}

	var list []string
	wrongID := ""
	for _, name := range order {
		list = append(list, "/dev/"+name+" ("+tried[name]+")")
		if wrongID == "" && strings.Contains(tried[name], "a different media") {
			wrongID = "/dev/" + name
		}
	}
	if len(list) == 0 {
		list = []string{"none: no block device appeared (is the disk, USB or CD driver in the initramfs?)"}
	}
	hint := "check byz.media= (it must match byzantium/media-* on the media), boot with from=/dev/sdb1 naming the partition that holds byzantium/, or delay=30 for a slow USB stick"
	if from != "" {
		hint = "check from= (a partition holding byzantium/, e.g. from=/dev/sdb1, from=LABEL=BYZANTIUM or from=UUID= as blkid shows it), or boot without it to search by byz.media=; delay=30 for a slow USB stick"
	} else if wrongID != "" {
		hint = "the media ID differs (another build's stick?): boot with from=" + wrongID + " to use it anyway, or fix byz.media="
	}
	return nil, &FatalError{
		Err:  fmt.Errorf("%s after %v; devices tried: %s", what, delay, strings.Join(list, ", ")),
		Hint: hint,
	}
}

// tryDevice mounts one candidate at overlays.ProbeDir and keeps it, moved
// to overlays.MediaDir, when match accepts it. final is false when the
// device should be looked at again on the next pass (it could not be
// opened yet).
func (s *stacker) tryDevice(name string, only func(string, fsInfo) bool, match mediaMatch) (m *Media, why string, final bool) {
	dev := filepath.Join(s.root, "dev", name)
	f, err := os.Open(dev)
	if err != nil {
		return nil, err.Error(), false
	}
	info, ok := sniff(f)
	f.Close()
	if !ok {
		return nil, "no filesystem the init can read", true
	}
	if only != nil && !only(name, info) {
		return nil, "not the one from= names", true
	}
	probe := filepath.Join(s.root, overlays.ProbeDir)
	if err := os.MkdirAll(probe, 0o755); err != nil {
		return nil, err.Error(), true
	}
	if err := s.mountRO(dev, probe, info.Type); err != nil {
		return nil, fmt.Sprintf("%s: %v", info.Type, err), true
	}
	ok, why = match(probe, info)
	if !ok {
		if err := s.unmount(probe, 0); err != nil {
			s.logf("warning: unmounting %s: %v", probe, err)
		}
		return nil, info.Type + ", " + why, true
	}
	media := filepath.Join(s.root, overlays.MediaDir)
	if err := os.MkdirAll(media, 0o755); err != nil {
		return nil, err.Error(), true
	}
	if err := s.mount(probe, media, "", unix.MS_MOVE, ""); err != nil {
		return nil, fmt.Sprintf("moving the mount to %s: %v", media, err), true
	}
	s.logf("media: /dev/%s (%s%s)", name, info.Type, labelSuffix(info.Label))
	return &Media{Dev: "/dev/" + name, FSType: info.Type, Dir: media}, "", true
}

func labelSuffix(l string) string {
	if l == "" {
		return ""
	}
	return ", label " + l
}

// vfatOptions are tried in order. The kernel's default iocharset may be
// a module the initramfs lacks (Debian's is "ascii", nls_ascii), and
// mounting then fails with EINVAL; iso8859-1 is what the builder puts
// in. Names stay UTF-8 either way (utf8).
var vfatOptions = []string{"utf8,iocharset=iso8859-1", "", "utf8,iocharset=utf8"}

// mountRO mounts a device read-only.
func (s *stacker) mountRO(dev, dir, fstype string) error {
	opts := []string{""}
	if fstype == "vfat" {
		opts = vfatOptions
	}
	var err error
	for _, o := range opts {
		if err = s.mount(dev, dir, fstype, unix.MS_RDONLY, o); err == nil {
			return nil
		}
	}
	return err
}

package clone

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"byzantium/blockdev"
	"byzantium/image/bootloader"
	"byzantium/image/usbimg"
	"byzantium/internal/bytesize"
	"byzantium/overlays"
)

// System is the machine the safety checks look at, read the way a
// system without udev allows: sysfs, /proc/self/mountinfo, /proc/swaps
// and /proc/cmdline. Root prefixes every path (tests point it at a fake
// tree); "" means "/".
type System struct{ Root string }

func (s System) path(p string) string { return filepath.Join(s.root(), p) }

func (s System) root() string {
	if s.Root == "" {
		return "/"
	}
	return s.Root
}

// Device is a whole-disk block device, as blockdev reads it: the same
// description the node's panel lists disks with.
type Device struct{ blockdev.Disk }

// String names the device for a person: path, model, serial, size.
func (d *Device) String() string {
	model := strings.TrimSpace(d.Vendor + " " + d.Model)
	if model == "" {
		model = "unknown model"
	}
	serial := d.Serial
	if serial == "" {
		serial = "unknown"
	}
	bus := ""
	if d.USB {
		bus = ", USB"
	}
	return fmt.Sprintf("%s: %s, serial %s, %s (%d bytes)%s", d.Path, model, serial, bytesize.Format(d.Size), d.Size, bus)
}

// Inspect describes the block device at devPath (a /dev node). A file
// that is no block device gives nil and no error: an image file target.
func (s System) Inspect(devPath string) (*Device, error) {
	fi, err := os.Stat(devPath)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeDevice == 0 || fi.Mode()&fs.ModeCharDevice != 0 {
		return nil, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(devPath, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: devPath, Err: err}
	}
	d, err := s.InspectDev(unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if err != nil {
		return nil, err
	}
	d.Path = devPath
	return d, nil
}

// InspectDev describes the block device major:minor from sysfs. A
// partition is refused: a clone takes the whole disk.
func (s System) InspectDev(major, minor uint32) (*Device, error) {
	d, err := blockdev.Sys{Root: s.Root}.ByNumber(major, minor)
	if errors.Is(err, blockdev.ErrPartition) {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	return &Device{*d}, nil
}

// Check refuses a target that must not be written: one that holds or
// stacks under anything mounted (the node's own boot media first of
// all), swap or a device-mapper or md device; one that carries the
// running node's media ID; a read-only one; one smaller than need; and a
// disk that is neither removable nor on USB, unless force. The error
// says which rule and why.
func (s System) Check(d *Device, need int64, force bool) error {
	mounts, err := s.mounts()
	if err != nil {
		return err
	}
	users := map[string][]string{} // disk → why it is in use
	for _, m := range mounts {
		for _, dev := range s.lower(m.dev, mounts, map[string]bool{}) {
			disk := s.diskOf(dev)
			why := fmt.Sprintf("/dev/%s is mounted at %s", dev, m.point)
			if dev != m.dev {
				why = fmt.Sprintf("%s (through /dev/%s)", why, m.dev)
			}
			if m.point == "/"+overlays.MediaDir {
				why = "the node booted from it: " + why
			}
			users[disk] = append(users[disk], why)
		}
	}
	for _, dev := range s.swaps() {
		users[s.diskOf(dev)] = append(users[s.diskOf(dev)], "/dev/"+dev+" is swap")
	}
	if why := users[d.Name]; len(why) > 0 {
		rank := func(w string) int { // the boot media first
			if strings.HasPrefix(w, "the node") {
				return 0
			}
			return 1
		}
		slices.SortStableFunc(why, func(a, b string) int { return rank(a) - rank(b) })
		return fmt.Errorf("%w: %s is in use: %s", ErrRefused, d.Path, strings.Join(why, "; "))
	}
	if h := s.holders(d); len(h) > 0 {
		return fmt.Errorf("%w: %s is held by %s (an unlocked volume, LVM or RAID on it): close that first", ErrRefused, d.Path, strings.Join(h, ", "))
	}
	if id := s.bootMediaID(); id != "" && s.carries(d, id) {
		return fmt.Errorf("%w: %s holds this node's own boot media (byzantium/media-%s)", ErrRefused, d.Path, id)
	}
	if d.ReadOnly {
		return fmt.Errorf("%w: %s is read-only (a write-protect switch?)", ErrRefused, d.Path)
	}
	if d.Size < need {
		return fmt.Errorf("%w: %s has %s, the clone needs %s", ErrTooSmall, d.Path, bytesize.Format(d.Size), bytesize.Format(need))
	}
	if !d.Detachable() && !force {
		return fmt.Errorf("%w: %s is not a removable disk (sysfs says removable=0 and it is not on USB): it may be a computer's own disk; --force if you mean it", ErrRefused, d.Path)
	}
	return nil
}

// mount is one line of mountinfo: the device (a block device name, ""
// for none) and where it is mounted.
type mount struct {
	dev, point string
}

func (s System) mounts() ([]mount, error) {
	b, err := os.ReadFile(s.path("proc/self/mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		m := mount{point: unescape(f[4])}
		if target, err := filepath.EvalSymlinks(s.path("sys/dev/block/" + f[2])); err == nil {
			m.dev = filepath.Base(target)
		}
		out = append(out, m)
	}
	return out, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lower returns dev and every block device under it: the slaves of a
// device-mapper or md device, and for a loop device, the device holding
// its backing file (found through the mounts), recursively.
func (s System) lower(dev string, mounts []mount, seen map[string]bool) []string {
	if dev == "" || seen[dev] {
		return nil
	}
	seen[dev] = true
	out := []string{dev}
	dir := s.path("sys/class/block/" + dev)
	if slaves, err := os.ReadDir(filepath.Join(dir, "slaves")); err == nil {
		for _, sl := range slaves {
			out = append(out, s.lower(sl.Name(), mounts, seen)...)
		}
	}
	if file := blockdev.LoopBacking(dir); file != "" {
		best := mount{}
		for _, m := range mounts {
			if within(file, m.point) && len(m.point) >= len(best.point) {
				best = m
			}
		}
		out = append(out, s.lower(best.dev, mounts, seen)...)
	}
	return out
}

func within(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// diskOf returns the disk a partition belongs to, or dev itself.
func (s System) diskOf(dev string) string {
	dir, err := filepath.EvalSymlinks(s.path("sys/class/block/" + dev))
	if err != nil || !blockdev.IsPartition(dir) {
		return dev
	}
	return filepath.Base(filepath.Dir(dir))
}

// swaps lists the block devices in use as swap.
func (s System) swaps() []string {
	b, err := os.ReadFile(s.path("proc/swaps"))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "partition" && strings.HasPrefix(f[0], "/dev/") {
			out = append(out, strings.TrimPrefix(f[0], "/dev/"))
		}
	}
	return out
}

// holders lists what holds the disk or one of its partitions open.
func (s System) holders(d *Device) []string {
	var out []string
	dirs := append([]string{d.SysDir}, blockdev.Partitions(d.SysDir)...)
	for _, dir := range dirs {
		hs, _ := os.ReadDir(filepath.Join(dir, "holders"))
		for _, h := range hs {
			out = append(out, fmt.Sprintf("/dev/%s (on /dev/%s)", h.Name(), filepath.Base(dir)))
		}
	}
	return out
}

// bootMediaID is the byz.media= of the running kernel, "" off a node.
func (s System) bootMediaID() string {
	b, _ := os.ReadFile(s.path("proc/cmdline"))
	for _, f := range strings.Fields(string(b)) {
		if id, ok := strings.CutPrefix(f, bootloader.MediaParam+"="); ok {
			return id
		}
	}
	return ""
}

// carries reports whether the disk's FAT partition holds the media
// marker of id: the node's boot stick, even when nothing of it is
// mounted (after copy2ram).
func (s System) carries(d *Device, id string) bool {
	img, err := usbimg.Open(s.path("dev/"+d.Name), os.O_RDONLY)
	if err != nil {
		return false
	}
	defer img.Close()
	_, err = fs.Stat(img.FS, overlays.MarkerPath(id))
	return err == nil
}

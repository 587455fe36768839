// Package qemu boots kernels, ISOs and disk images under QEMU the same way
// in every test and in `byz run qemu`: TCG only (KVM hangs on our CI
// machines), no display, the serial console captured line by line, and
// the VM killed when the test ends.
package qemu

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ErrBadOptions reports Options that cannot make a command line.
var ErrBadOptions = errors.New("qemu: bad options")

// Media says how Disk is attached.
type Media string

const (
	Virtio Media = "virtio" // virtio-blk-pci, the default
	IDE    Media = "ide"    // an IDE (pc) or AHCI (q35) hard disk
	USB    Media = "usb"    // a usb-storage stick on an xHCI controller
)

// Options describe one VM. Give Kernel (with Initrd and Append), ISO,
// Disk, or ISO and Disk together. The zero value of every other field is
// a sane default.
type Options struct {
	// Kernel, Initrd and Append boot a kernel directly (-kernel).
	Kernel, Initrd, Append string
	// ISO is attached as a CD-ROM and booted first.
	ISO string
	// Disk is a raw image attached as DiskAs (default Virtio). It is
	// written to: pass a copy if that matters.
	Disk   string
	DiskAs Media
	// UEFI boots OVMF instead of SeaBIOS, with a private copy of its
	// variable store. SecureBoot boots OVMF with Microsoft's keys enrolled
	// and Secure Boot enforced (it implies UEFI and q35 with SMM).
	UEFI, SecureBoot bool
	// Machine is "pc" (default) or "q35".
	Machine string
	// Mem is the guest RAM in QEMU's syntax; "" means 1G.
	Mem string
	// CPUs is the guest's processor count (multi-threaded TCG); 0 means 1.
	CPUs int
	// Forward lists host-to-guest TCP forwards, "HOSTPORT:GUESTPORT" or
	// "127.0.0.1:HOSTPORT-:GUESTPORT"; the host side is always loopback.
	Forward []string
	// Binary is the QEMU to run; "" means qemu-system-x86_64.
	Binary string
	// OVMFDir holds the OVMF firmware; "" means /usr/share/OVMF.
	OVMFDir string
	// Extra are more disks, attached after Disk and never booted from: a
	// blank stick to clone onto, a store.
	Extra []Drive
	// UserNet tunes the user-mode NIC that Forward makes (eth0 in the
	// guest): its subnet and whether it reaches past the host.
	UserNet UserNet
	// Links are point-to-point Ethernet links to other guests over UDP
	// on 127.0.0.1 (eth1, eth2, … in the guest, in this order): how tests
	// wire several nodes into a mesh without root or a bridge.
	Links []Link
	// Monitor opens QEMU's human monitor on a unix socket in the VM's
	// temporary folder (VM.Monitor sends it commands, such as set_link).
	Monitor bool
	// Credentials are handed to the guest as SMBIOS type 11 strings
	// "io.systemd.credential:NAME=VALUE", in the manner of systemd: byzd
	// reads byz.admin-password from there (runtime/auth).
	Credentials map[string]string
}

// Drive is one more disk.
type Drive struct {
	Path string
	As   Media // virtio (default), ide or usb
	// Serial is the serial number the guest sees (usb and virtio).
	Serial string
}

// UserNet are the user-mode network's options.
type UserNet struct {
	// Net is the guest's subnet (QEMU's net=, "10.0.2.0/24" when ""):
	// nodes linked into one mesh each get their own, so that one node's
	// user network does not shadow another's through the mesh.
	Net string
	// Restrict cuts the guest off from the host and beyond (QEMU's
	// restrict=on): forwards still reach the guest, but it has no way
	// out, as a node without an uplink.
	Restrict bool
	// MAC is the NIC's address ("" is QEMU's default, the same
	// 52:54:00:12:34:56 in every guest): guests meshed together need
	// their own, or batman-adv, which names a node by its first port's
	// address, takes two nodes for one.
	MAC string
}

// Link is one end of a point-to-point link: frames go to 127.0.0.1:Peer
// and come from 127.0.0.1:Local, where the other guest's Link has them
// the other way round.
type Link struct {
	// ID names the link for the monitor (set_link ID off); it must be
	// unique in the VM, letters, digits, '-' and '_'.
	ID          string
	Local, Peer int
	// MAC is the guest's address on the link; "" lets QEMU choose (then
	// two guests may pick the same one: give one per node).
	MAC string
}

// Args returns QEMU's arguments. varsCopy is the writable copy of the
// OVMF variable store, used only for UEFI.
func (o Options) Args(varsCopy string) ([]string, error) {
	if o.Kernel == "" && o.ISO == "" && o.Disk == "" {
		return nil, fmt.Errorf("%w: nothing to boot: give a kernel, an ISO or a disk image", ErrBadOptions)
	}
	if o.Kernel == "" && (o.Initrd != "" || o.Append != "") {
		return nil, fmt.Errorf("%w: an initrd or kernel command line needs a kernel", ErrBadOptions)
	}
	machine := o.Machine
	if machine == "" {
		machine = "pc"
	}
	if machine != "pc" && machine != "q35" {
		return nil, fmt.Errorf("%w: machine %q: want pc or q35", ErrBadOptions, machine)
	}
	if o.SecureBoot {
		machine = "q35,smm=on"
	}
	mem := o.Mem
	if mem == "" {
		mem = "1G"
	}
	// -nodefaults: no stray VGA, NIC or CD drive; the serial console is
	// the only output. -no-reboot turns a guest reboot (or a kernel panic
	// with panic=N) into QEMU exiting, which a test sees.
	args := []string{"-machine", machine, "-m", mem, "-nodefaults", "-display", "none",
		"-serial", "stdio", "-monitor", "none", "-no-reboot"}
	if o.CPUs > 1 {
		args = append(args, "-smp", fmt.Sprint(o.CPUs))
	}
	if o.UEFI || o.SecureBoot {
		args = append(args, o.firmwareArgs(varsCopy)...)
	}
	if o.Kernel != "" {
		args = append(args, "-kernel", o.Kernel)
		if o.Initrd != "" {
			args = append(args, "-initrd", o.Initrd)
		}
		// TCG on a loaded host can fail the kernel's IO-APIC timer check
		// ("IO-APIC + timer doesn't work", a panic, seen once in CI);
		// no_timer_check skips that check, as VM images commonly do.
		app := strings.TrimSpace(o.Append + " no_timer_check")
		if strings.Contains(" "+o.Append+" ", " no_timer_check ") {
			app = o.Append
		}
		args = append(args, "-append", app)
	}
	if o.ISO != "" {
		args = append(args, "-drive", "if=none,id=cd0,format=raw,media=cdrom,readonly=on,file="+driveFile(o.ISO),
			"-device", "ide-cd,drive=cd0,bootindex=1")
	}
	if o.Disk != "" {
		disk, err := o.diskArgs()
		if err != nil {
			return nil, err
		}
		args = append(args, disk...)
	}
	for i, d := range o.Extra {
		id := fmt.Sprintf("extra%d", i)
		drive := "if=none,id=" + id + ",format=raw,file=" + driveFile(d.Path)
		serial := ""
		if d.Serial != "" {
			serial = ",serial=" + d.Serial
		}
		switch d.As {
		case "", Virtio:
			args = append(args, "-drive", drive, "-device", "virtio-blk-pci,drive="+id+serial)
		case IDE:
			args = append(args, "-drive", drive, "-device", "ide-hd,drive="+id)
		case USB:
			if !o.hasXHCI(args) {
				args = append(args, "-device", "qemu-xhci,id=xhci")
			}
			args = append(args, "-drive", drive, "-device", "usb-storage,bus=xhci.0,removable=on,drive="+id+serial)
		default:
			return nil, fmt.Errorf("%w: disk media %q: want virtio, ide or usb", ErrBadOptions, d.As)
		}
	}
	names := make([]string, 0, len(o.Credentials))
	for k := range o.Credentials {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "" || strings.ContainsAny(k, "=\n") || strings.Contains(o.Credentials[k], "\n") {
			return nil, fmt.Errorf("%w: credential %q: a name without = and a one-line value", ErrBadOptions, k)
		}
		// QEMU's option syntax escapes a comma by doubling it.
		v := strings.ReplaceAll("io.systemd.credential:"+k+"="+o.Credentials[k], ",", ",,")
		args = append(args, "-smbios", "type=11,value="+v)
	}
	nic, err := nicArgs(o.Forward, o.UserNet)
	if err != nil {
		return nil, err
	}
	args = append(args, nic...)
	links, err := linkArgs(o.Links)
	if err != nil {
		return nil, err
	}
	args = append(args, links...)
	if o.Monitor {
		// varsCopy is always a file in the VM's own temporary folder
		// (VM.start), where VM.Monitor looks for the socket.
		args = append(args, "-monitor", "unix:"+filepath.Join(filepath.Dir(varsCopy), monitorSocket)+",server=on,wait=off")
	}
	// A hardware RNG, as real PCs have (RDRAND, TPM): without one the TCG
	// guest waits seconds for its entropy pool before anything can use
	// crypto/rand, which is not what a node on real hardware does.
	return append(args, "-device", "virtio-rng-pci"), nil
}

// monitorSocket is the monitor's socket in the VM's temporary folder.
const monitorSocket = "monitor.sock"

var (
	linkID     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,30}$`)
	macPattern = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
)

// linkArgs gives a socket netdev and a virtio NIC for each link.
func linkArgs(links []Link) ([]string, error) {
	var args []string
	seen := map[string]bool{"up": true}
	for _, l := range links {
		switch {
		case !linkID.MatchString(l.ID) || seen[l.ID]:
			return nil, fmt.Errorf("%w: link id %q: want a unique name of letters, digits, - and _ (not \"up\", the user network's)", ErrBadOptions, l.ID)
		case l.Local < 1 || l.Local > 65535 || l.Peer < 1 || l.Peer > 65535 || l.Local == l.Peer:
			return nil, fmt.Errorf("%w: link %s: ports %d and %d: two different ports from 1 to 65535", ErrBadOptions, l.ID, l.Local, l.Peer)
		case l.MAC != "" && !macPattern.MatchString(l.MAC):
			return nil, fmt.Errorf("%w: link %s: MAC %q: want six lower-case hex bytes with colons", ErrBadOptions, l.ID, l.MAC)
		}
		seen[l.ID] = true
		dev := "virtio-net-pci,netdev=" + l.ID
		if l.MAC != "" {
			dev += ",mac=" + l.MAC
		}
		args = append(args, "-netdev", fmt.Sprintf("socket,id=%s,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d", l.ID, l.Peer, l.Local),
			"-device", dev)
	}
	return args, nil
}

func (o Options) firmwareArgs(varsCopy string) []string {
	dir := o.OVMFDir
	if dir == "" {
		dir = "/usr/share/OVMF"
	}
	code := filepath.Join(dir, "OVMF_CODE_4M.fd")
	var args []string
	if o.SecureBoot {
		code = filepath.Join(dir, "OVMF_CODE_4M.ms.fd")
		// The Secure Boot build keeps its variables in SMM-only flash.
		args = append(args, "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	return append(args,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+driveFile(code),
		"-drive", "if=pflash,format=raw,unit=1,file="+driveFile(varsCopy))
}

// varsTemplate is the variable store UEFI boots copy from.
func (o Options) varsTemplate() string {
	dir := o.OVMFDir
	if dir == "" {
		dir = "/usr/share/OVMF"
	}
	if o.SecureBoot {
		return filepath.Join(dir, "OVMF_VARS_4M.ms.fd")
	}
	return filepath.Join(dir, "OVMF_VARS_4M.fd")
}

func (o Options) diskArgs() ([]string, error) {
	drive := "if=none,id=disk0,format=raw,file=" + driveFile(o.Disk)
	switch o.DiskAs {
	case "", Virtio:
		return []string{"-drive", drive, "-device", "virtio-blk-pci,drive=disk0,bootindex=2"}, nil
	case IDE:
		return []string{"-drive", drive, "-device", "ide-hd,drive=disk0,bootindex=2"}, nil
	case USB:
		return []string{"-drive", drive, "-device", "qemu-xhci,id=xhci",
			"-device", "usb-storage,bus=xhci.0,drive=disk0,bootindex=2"}, nil
	}
	return nil, fmt.Errorf("%w: disk media %q: want virtio, ide or usb", ErrBadOptions, o.DiskAs)
}

func (o Options) hasXHCI(args []string) bool {
	for _, a := range args {
		if a == "qemu-xhci,id=xhci" {
			return true
		}
	}
	return false
}

// nicArgs gives user networking with the forwards (netdev "up", for the
// monitor's set_link), or no NIC at all.
func nicArgs(forwards []string, u UserNet) ([]string, error) {
	if len(forwards) == 0 {
		if u != (UserNet{}) {
			return nil, fmt.Errorf("%w: user network options without a forward: there is no user network", ErrBadOptions)
		}
		return []string{"-nic", "none"}, nil
	}
	netdev := "user,id=up"
	if u.Net != "" {
		p, err := netip.ParsePrefix(u.Net)
		if err != nil || !p.Addr().Is4() || p.Bits() > 24 || p.Masked() != p {
			return nil, fmt.Errorf("%w: user network %q: want an IPv4 subnet of at least /24, like 10.0.7.0/24", ErrBadOptions, u.Net)
		}
		netdev += ",net=" + u.Net
	}
	if u.Restrict {
		netdev += ",restrict=on"
	}
	dev := "virtio-net-pci,netdev=up"
	if u.MAC != "" {
		if !macPattern.MatchString(u.MAC) {
			return nil, fmt.Errorf("%w: user network MAC %q: want six lower-case hex bytes with colons", ErrBadOptions, u.MAC)
		}
		dev += ",mac=" + u.MAC
	}
	for _, f := range forwards {
		host, guest, err := parseForward(f)
		if err != nil {
			return nil, err
		}
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", host, guest)
	}
	return []string{"-netdev", netdev, "-device", dev}, nil
}

// parseForward reads "HOST:GUEST" or "127.0.0.1:HOST-:GUEST".
func parseForward(f string) (host, guest int, err error) {
	bad := func(why string) (int, int, error) {
		return 0, 0, fmt.Errorf("%w: forward %q: %s (want HOSTPORT:GUESTPORT or 127.0.0.1:HOSTPORT-:GUESTPORT)", ErrBadOptions, f, why)
	}
	hostPart, guestPart, ok := strings.Cut(f, "-:")
	if ok {
		addr, port, err := net.SplitHostPort(hostPart)
		if err != nil {
			return bad(err.Error())
		}
		if ip := net.ParseIP(addr); ip == nil || !ip.IsLoopback() {
			return bad("the host side must be a loopback address")
		}
		hostPart = port
	} else if hostPart, guestPart, ok = strings.Cut(f, ":"); !ok {
		return bad("no ':'")
	}
	h, err1 := strconv.ParseUint(hostPart, 10, 16)
	g, err2 := strconv.ParseUint(guestPart, 10, 16)
	if err1 != nil || err2 != nil || h == 0 || g == 0 {
		return bad("ports are numbers from 1 to 65535")
	}
	return int(h), int(g), nil
}

// driveFile escapes a path for -drive, where a comma separates options.
func driveFile(p string) string { return strings.ReplaceAll(p, ",", ",,") }

// FreeUDPPorts returns n distinct UDP ports free on 127.0.0.1 just now,
// for Links' ends.
func FreeUDPPorts(n int) ([]int, error) {
	var ports []int
	for range n {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("qemu: a free UDP port: %w", err)
		}
		defer c.Close()
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
	}
	return ports, nil
}

// MustFreeUDPPorts is FreeUDPPorts for tests: an error fails t.
func MustFreeUDPPorts(t interface{ Fatal(...any) }, n int) []int {
	ports, err := FreeUDPPorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

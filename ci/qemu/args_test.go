package qemu

import (
	"errors"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want []string // substrings of the joined command line
		not  []string
	}{
		{"kernel", Options{Kernel: "vmlinuz", Initrd: "initrd", Append: "console=ttyS0"},
			[]string{"-machine pc ", "-m 1G", "-kernel vmlinuz -initrd initrd -append console=ttyS0 no_timer_check", "-no-reboot", "-nic none"},
			[]string{"pflash", "enable-kvm"}},
		{"iso uefi", Options{ISO: "a,b.iso", UEFI: true, Machine: "q35", Mem: "2G"},
			[]string{"-machine q35 ", "-m 2G", "file=/usr/share/OVMF/OVMF_CODE_4M.fd", "unit=1,file=VARS",
				"media=cdrom,readonly=on,file=a,,b.iso", "ide-cd,drive=cd0"},
			[]string{"secure=on", "ms.fd"}},
		{"secure boot usb", Options{Disk: "usb.img", DiskAs: USB, SecureBoot: true},
			[]string{"-machine q35,smm=on", "driver=cfi.pflash01,property=secure,value=on", "OVMF_CODE_4M.ms.fd",
				"qemu-xhci", "usb-storage,bus=xhci.0,drive=disk0"}, nil},
		{"ide disk with forwards", Options{Disk: "d.img", DiskAs: IDE, Forward: []string{"8443:443", "127.0.0.1:8080-:80"}},
			[]string{"ide-hd,drive=disk0", "-netdev user,id=up,hostfwd=tcp:127.0.0.1:8443-:443,hostfwd=tcp:127.0.0.1:8080-:80 -device virtio-net-pci,netdev=up "}, []string{"-monitor unix"}},
		{"a mesh node: own subnet, cut off, two links, a monitor", Options{Disk: "d.img", Forward: []string{"8443:443"},
			UserNet: UserNet{Net: "10.0.10.0/24", Restrict: true, MAC: "52:54:00:0a:00:01"}, Monitor: true,
			Links: []Link{{ID: "ab", Local: 40001, Peer: 40002, MAC: "52:54:00:00:0a:01"}, {ID: "ac", Local: 40003, Peer: 40004}}},
			[]string{"-netdev user,id=up,net=10.0.10.0/24,restrict=on,hostfwd=tcp:127.0.0.1:8443-:443 -device virtio-net-pci,netdev=up,mac=52:54:00:0a:00:01 -netdev socket,id=ab,udp=127.0.0.1:40002,localaddr=127.0.0.1:40001 -device virtio-net-pci,netdev=ab,mac=52:54:00:00:0a:01 -netdev socket,id=ac,udp=127.0.0.1:40004,localaddr=127.0.0.1:40003 -device virtio-net-pci,netdev=ac -monitor unix:monitor.sock,server=on,wait=off"}, nil},
		{"virtio disk", Options{Disk: "d.img"}, []string{"virtio-blk-pci,drive=disk0"}, []string{"-smp"}},
		{"two processors", Options{Disk: "d.img", CPUs: 2}, []string{"-no-reboot -smp 2 "}, nil},
		{"a usb stick booted and a blank one", Options{Disk: "a.img", DiskAs: USB, Extra: []Drive{{Path: "b.img", As: USB, Serial: "BLANK1"}, {Path: "c.img"}}},
			[]string{"-drive if=none,id=disk0,format=raw,file=a.img -device qemu-xhci,id=xhci -device usb-storage,bus=xhci.0,drive=disk0,bootindex=2",
				"-drive if=none,id=extra0,format=raw,file=b.img -device usb-storage,bus=xhci.0,removable=on,drive=extra0,serial=BLANK1",
				"virtio-blk-pci,drive=extra1 "}, nil},
		{"credentials", Options{Disk: "d.img", Credentials: map[string]string{"byz.b": "x", "byz.admin-password": "a,b c"}},
			[]string{"-smbios type=11,value=io.systemd.credential:byz.admin-password=a,,b c -smbios type=11,value=io.systemd.credential:byz.b=x"}, nil},
	} {
		args, err := tc.o.Args("VARS")
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		line := strings.Join(args, " ") + " "
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: %q lacks %q", tc.name, line, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(line, n) {
				t.Errorf("%s: %q has %q", tc.name, line, n)
			}
		}
	}
}

func TestArgsErrors(t *testing.T) {
	for _, o := range []Options{
		{},
		{Initrd: "initrd"},
		{Kernel: "k", Machine: "virt"},
		{Disk: "d", DiskAs: "scsi"},
		{Kernel: "k", Forward: []string{"0.0.0.0:80-:80"}},
		{Kernel: "k", Forward: []string{"80"}},
		{Kernel: "k", Forward: []string{"70000:80"}},
		{Kernel: "k", UserNet: UserNet{Restrict: true}},
		{Kernel: "k", Forward: []string{"80:80"}, UserNet: UserNet{Net: "10.0.2.1/24"}},
		{Kernel: "k", Forward: []string{"80:80"}, UserNet: UserNet{Net: "10.0.0.0/25"}},
		{Kernel: "k", Forward: []string{"80:80"}, UserNet: UserNet{MAC: "52:54:00:0a:00"}},
		{Kernel: "k", Links: []Link{{ID: "up", Local: 1, Peer: 2}}},
		{Kernel: "k", Links: []Link{{ID: "a", Local: 1, Peer: 2}, {ID: "a", Local: 3, Peer: 4}}},
		{Kernel: "k", Links: []Link{{ID: "a", Local: 1, Peer: 1}}},
		{Kernel: "k", Links: []Link{{ID: "a,b", Local: 1, Peer: 2}}},
		{Kernel: "k", Links: []Link{{ID: "a", Local: 1, Peer: 2, MAC: "52:54:00:00:0A:01"}}},
		{Kernel: "k", Credentials: map[string]string{"a=b": "c"}},
		{Kernel: "k", Credentials: map[string]string{"a": "two\nlines"}},
	} {
		if _, err := o.Args("VARS"); !errors.Is(err, ErrBadOptions) {
			t.Errorf("Args(%+v) = %v, want ErrBadOptions", o, err)
		}
	}
}

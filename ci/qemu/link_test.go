package qemu_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"byzantium/builder/initramfs"
	"byzantium/builder/kernel"
	"byzantium/ci/qemu"
	"byzantium/ci/testenv"
)

// pingInit is a guest's whole userland: it loads the NIC's modules, puts
// an address on the link and says once a second whether the peer answers.
const pingInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in $(grep -v '^#' /etc/byz/modules.load); do insmod /$m; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.77.%d/24 dev eth0
echo link-ready
while true; do
	if ping -c 1 -W 1 10.0.77.%d >/dev/null 2>&1; then echo ping-ok; else echo ping-fail; fi
	sleep 1
done
`

// TestLinkAndMonitor boots two guests joined by a Link and cuts the link
// with the monitor's set_link: the end-to-end mesh tests stand on both.
func TestLinkAndMonitor(t *testing.T) {
	testenv.RequireTool(t, "qemu-system-x86_64")
	root := repoRoot(t)
	kdebs, _ := filepath.Glob(filepath.Join(root, ".cache/debs/linux-image-*-cloud-amd64_*.deb"))
	bdebs, _ := filepath.Glob(filepath.Join(root, ".cache/debs/busybox-static_*.deb"))
	if len(kdebs) == 0 || len(bdebs) == 0 {
		testenv.RequireFile(t, filepath.Join(root, ".cache/debs/busybox-static_*.deb"), "run make fetch")
	}
	dir := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", bdebs[0], filepath.Join(dir, "bb")).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	f, err := os.Open(kdebs[len(kdebs)-1])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vmlinuz, modDir := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "modules")
	k, err := kernel.ExtractDeb(f, f.Name(), kernel.ExtractOptions{Vmlinuz: vmlinuz, ModulesDir: modDir})
	if err != nil {
		t.Fatal(err)
	}
	mods, err := k.Modules.Closure("virtio_pci", "virtio_net")
	if err != nil {
		t.Fatal(err)
	}
	initrd := func(self, peer int) string {
		p := filepath.Join(dir, fmt.Sprintf("initrd%d", self))
		files := append([]initramfs.File{
			{Path: "init", Data: fmt.Appendf(nil, pingInit, self, peer), Mode: 0o755},
			{Path: "bin/busybox", Src: filepath.Join(dir, "bb/bin/busybox"), Mode: 0o755},
		}, initramfs.ModuleFiles(modDir, k.Version, mods)...)
		out, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		if err := initramfs.Write(out, files, initramfs.Options{ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ports := qemu.MustFreeUDPPorts(t, 2)
	start := func(self, peer int, link qemu.Link) *qemu.VM {
		return qemu.StartT(t, qemu.Config{
			Options: qemu.Options{Kernel: vmlinuz, Initrd: initrd(self, peer), Append: "console=ttyS0 panic=-1 quiet",
				Links: []qemu.Link{link}, Monitor: true},
			SerialLog: filepath.Join(dir, fmt.Sprintf("serial%d.log", self)),
		})
	}
	a := start(1, 2, qemu.Link{ID: "ab", Local: ports[0], Peer: ports[1], MAC: "52:54:00:4d:00:01"})
	b := start(2, 1, qemu.Link{ID: "ab", Local: ports[1], Peer: ports[0], MAC: "52:54:00:4d:00:02"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, vm := range []*qemu.VM{a, b} {
		if _, err := vm.Expect(ctx, "ping-ok"); err != nil {
			t.Fatalf("the guests do not reach each other over the link: %v", err)
		}
	}
	out, err := a.Monitor("info network")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("info network:\n%s", out)
	if out, err := a.Monitor("set_link ab off"); err != nil || out != "" {
		t.Fatalf("set_link ab off: %q, %v", out, err)
	}
	if _, err := a.Expect(ctx, "ping-fail"); err != nil {
		t.Fatalf("the link still carries after set_link off: %v", err)
	}
	if _, err := a.Monitor("set_link ab on"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expect(ctx, "ping-ok"); err != nil {
		t.Fatalf("the link does not come back after set_link on: %v", err)
	}
	// The monitor answers a wrong command with text, which Monitor
	// returns for the caller to read.
	if out, err := a.Monitor("set_link nosuch off"); err != nil || out == "" {
		t.Errorf("set_link on a missing link: %q, %v; want QEMU's complaint", out, err)
	}
}

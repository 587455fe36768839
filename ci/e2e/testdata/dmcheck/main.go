// Command dmcheck runs as PID 1 (rdinit=/dmcheck) in the e2e LUKS2 test:
// it loads the initramfs's kernel modules, unlocks the LUKS2 volume on
// /dev/vda with runtime/luks2, maps it through dm-crypt, checks the block
// the host encrypted, writes one for the host to check, and powers off.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"byzantium/runtime/luks2"

	"golang.org/x/sys/unix"
)

func main() {
	err := run()
	if err != nil {
		fmt.Printf("DMCHECK FAIL: %v\n", err)
	} else {
		fmt.Println("DMCHECK OK")
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// Pattern is the block a side writes: sha256-derived bytes.
func Pattern(seed string, n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		s := sha256.Sum256(fmt.Appendf(nil, "%s-%d", seed, i))
		b = append(b, s[:]...)
	}
	return b[:n]
}

func run() error {
	for _, m := range []struct{ src, dst, typ string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	list, err := os.Open("/etc/byz/modules.load")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(list)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || p[0] == '#' {
			continue
		}
		f, err := os.Open(filepath.Join("/", p))
		if err != nil {
			return err
		}
		// ENODEV: a CPU-specific provider (aesni_intel) on a CPU
		// without the feature; the generic one is in the list too.
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST && err != unix.ENODEV && err != unix.ENXIO {
			return fmt.Errorf("loading %s: %w", p, err)
		}
		f.Close()
	}
	list.Close()
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	var pass string
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "dmcheck.pass="); ok {
			pass = v
		}
	}
	dev, err := os.Open("/dev/vda")
	if err != nil {
		return err
	}
	h, err := luks2.Read(dev)
	if err != nil {
		return err
	}
	key, slot, err := luks2.Unlock(dev, h, []byte(pass))
	dev.Close()
	if err != nil {
		return err
	}
	mapped, err := luks2.Open("/dev/vda", h, key, "dmcheck")
	clear(key)
	if err != nil {
		return err
	}
	fmt.Printf("dmcheck: keyslot %s opened, mapped at %s\n", slot, mapped)
	d, err := os.OpenFile(mapped, os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return err
	}
	got := make([]byte, 4096)
	if _, err := d.ReadAt(got, 4096); err != nil {
		return fmt.Errorf("reading the host's block: %w", err)
	}
	if !bytes.Equal(got, Pattern("host", 4096)) {
		return fmt.Errorf("the host's block reads back as % x…", got[:16])
	}
	if _, err := d.WriteAt(Pattern("guest", 4096), 0); err != nil {
		return fmt.Errorf("writing the guest's block: %w", err)
	}
	if err := d.Close(); err != nil {
		return err
	}
	return luks2.Close("dmcheck")
}

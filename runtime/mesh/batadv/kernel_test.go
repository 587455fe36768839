package batadv

import (
	"byzantium/ci/testenv"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// batmanAvailable says whether this kernel has batman-adv loaded or as a
// module file.
func batmanAvailable() bool {
	if _, err := os.Stat("/sys/module/batman_adv"); err == nil {
		return true
	}
	var uts unix.Utsname
	if unix.Uname(&uts) != nil {
		return false
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:]))
	found := false
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), "batman-adv.ko") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// inNetns runs f on a locked thread inside a new network namespace, so
// nothing touches the host's links.
func inNetns(t *testing.T, f func()) {
	t.Helper()
	testenv.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // creates and enters it
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Fatalf("back to the original namespace: %v", err)
		}
		ns.Close()
	}()
	f()
}

// On a kernel without batman-adv (this host, and any image that leaves the
// module out) both ways in fail with ErrNotInKernel and say so plainly.
func TestNotInKernel(t *testing.T) {
	if batmanAvailable() {
		t.Skip("batman-adv is in this kernel: the QEMU guest test covers the working path")
	}
	inNetns(t, func() {
		_, err := Open()
		if !errors.Is(err, ErrNotInKernel) {
			t.Fatalf("Open() = %v, want ErrNotInKernel", err)
		}
		if want := `batman-adv is not in this kernel: generic netlink family "batadv" not found (modprobe batman-adv failed)`; err.Error() != want {
			t.Errorf("Open() error %q, want %q", err, want)
		}
		_, err = CreateMesh("bat0", "")
		if !errors.Is(err, ErrNotInKernel) {
			t.Fatalf("CreateMesh() = %v, want ErrNotInKernel", err)
		}
		if want := "batman-adv is not in this kernel: create bat0: the kernel has no link kind batadv (modprobe batman-adv failed)"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("CreateMesh() error %q, want it to start %q", err, want)
		}
		if _, err := netlink.LinkByName("bat0"); err == nil {
			t.Error("bat0 exists after a failed create")
		}
	})
}

// An interface named bat0 that is not batman-adv is never taken for one:
// not reused, not deleted, not given hard interfaces.
func TestForeignBat0(t *testing.T) {
	inNetns(t, func() {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "bat0"}, PeerName: "hard0"}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Fatalf("make a veth named bat0: %v", err)
		}
		if _, err := CreateMesh("bat0", ""); err == nil || !strings.Contains(err.Error(), "bat0 exists and is a veth interface, not batman-adv") {
			t.Errorf("CreateMesh over a veth: %v", err)
		}
		if err := DeleteMesh("bat0"); err == nil || !strings.Contains(err.Error(), "not deleting it") {
			t.Errorf("DeleteMesh of a veth: %v", err)
		}
		if _, err := netlink.LinkByName("bat0"); err != nil {
			t.Errorf("the veth is gone: %v", err)
		}
		if _, err := AddHard("bat0", "hard0"); err == nil || !strings.Contains(err.Error(), "not batman-adv") {
			t.Errorf("AddHard to a veth: %v", err)
		}
		if l, err := netlink.LinkByName("hard0"); err != nil || l.Attrs().MasterIndex != 0 || l.Attrs().MTU != 1500 {
			t.Errorf("hard0 changed: %+v, %v", l, err)
		}
		if err := DeleteMesh("bat9"); err != nil {
			t.Errorf("DeleteMesh of a missing interface: %v", err)
		}
	})
}

package kernel

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

// cloudDeb finds the Debian cloud kernel package in the gitignored cache.
func cloudDeb(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	pattern := filepath.Join(filepath.Dir(string(bytes.TrimSpace(out))), ".cache/debs/linux-image-*-cloud-amd64_*.deb")
	debs, _ := filepath.Glob(pattern)
	if len(debs) == 0 {
		return testenv.RequireFile(t, pattern, "run ci/fetch-debs $(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image/{print $2}')")
	}
	return debs[len(debs)-1]
}

// TestCloudKernel indexes the real cloud kernel (.modinfo of its 1100-odd
// modules) and checks the module set a live system wants: what the cloud
// flavour lacks is reported by name, built-ins need no file, and
// dependencies come first.
func TestCloudKernel(t *testing.T) {
	f, err := os.Open(cloudDeb(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vmlinuz := filepath.Join(t.TempDir(), "vmlinuz")
	k, err := ExtractDeb(f, f.Name(), ExtractOptions{Vmlinuz: vmlinuz})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(k.Version, "-cloud-amd64") || len(k.Modules.Modules) < 500 {
		t.Errorf("version %q with %d modules", k.Version, len(k.Modules.Modules))
	}
	if st, err := os.Stat(vmlinuz); err != nil || st.Size() < 1<<20 {
		t.Errorf("vmlinuz: %v", err)
	}
	wanted := []string{"virtio_blk", "squashfs", "overlay", "isofs", "vfat", "nls_cp437", "nls_iso8859-1",
		"loop", "sr_mod", "usb-storage", "uas", "xhci_pci", "ahci", "nvme", "ext4", "dm_crypt"}
	order, err := k.Modules.Closure(wanted...)
	if !errors.Is(err, ErrMissingModules) {
		t.Fatalf("Closure: %v, want ErrMissingModules for the USB and SATA drivers", err)
	}
	t.Logf("%v", err)
	for _, m := range []string{"usb_storage", "uas", "xhci_pci", "ahci"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("the error does not name %s", m)
		}
	}
	for _, m := range []string{"nvme", "ext4", "squashfs"} {
		if strings.Contains(err.Error(), m) {
			t.Errorf("the error names %s, which the cloud kernel has", m)
		}
	}
	pos := map[string]int{}
	for i, m := range order {
		pos[m.Name] = i
		for _, d := range m.Depends {
			if j, ok := pos[d]; !ok && !k.Modules.Builtin[d] || ok && j >= i {
				t.Errorf("%s is loaded before its dependency %s", m.Name, d)
			}
		}
	}
	for _, m := range []string{"isofs", "squashfs", "overlay", "sr_mod", "dm_crypt", "virtio_blk"} {
		if _, ok := pos[m]; !ok {
			t.Errorf("%s is not in the closure %v", m, names(order))
		}
	}
	t.Logf("load order: %v", names(order))
	// The cloud flavour builds ext4 and its crc32c in, which is why the
	// e2e tests on it never missed crc32c: modules.builtin.modinfo says
	// so, and the softdep is met without a file.
	if mods, builtin := k.Modules.Lookup("crypto-crc32c"); !builtin {
		t.Errorf("Lookup(crypto-crc32c) = %v, not built in", names(mods))
	}
	crypto, err := k.Modules.Closure("crypto-xts", "crypto-aes")
	if err != nil || !slices.Contains(names(crypto), "xts") || !slices.Contains(names(crypto), "ecb") {
		t.Errorf("Closure(crypto-xts, crypto-aes) = %v, %v; want xts and its softdep ecb", names(crypto), err)
	}
	again, _ := k.Modules.Closure(wanted...)
	if !reflect.DeepEqual(names(again), names(order)) {
		t.Error("Closure is not deterministic")
	}
}

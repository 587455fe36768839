package kernel

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"byzantium/modules/entry"
)

// fakeDep is a small modules.dep in the shape of the Debian cloud kernel's.
const fakeDep = `kernel/fs/isofs/isofs.ko: kernel/drivers/cdrom/cdrom.ko
kernel/drivers/cdrom/cdrom.ko:
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/fs/nls/nls_iso8859-1.ko:
kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-mod.ko:
`

func fakeIndex(t *testing.T) *Index {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"modules.dep":     fakeDep,
		"modules.builtin": "kernel/fs/ext4/ext4.ko\nkernel/drivers/nvme/host/nvme.ko\n",
		"modules.alias":   "alias fs-iso9660 isofs\nalias iso9660 isofs\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ix, err := LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func names(ms []*Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestClosure(t *testing.T) {
	ix := fakeIndex(t)
	for _, tc := range []struct {
		want    []string
		order   []string
		missing string // substring of the error; "" for none
	}{
		{want: []string{"isofs"}, order: []string{"cdrom", "isofs"}},
		{want: []string{"sr_mod", "isofs"}, order: []string{"cdrom", "scsi_common", "scsi_mod", "sr_mod", "isofs"}},
		{want: []string{"isofs", "sr_mod"}, order: []string{"cdrom", "isofs", "scsi_common", "scsi_mod", "sr_mod"}},
		{want: []string{"nls_iso8859-1", "dm-crypt"}, order: []string{"nls_iso8859_1", "dm_mod", "dm_crypt"}},
		{want: []string{"ext4", "nvme"}, order: nil},
		{want: []string{"iso9660"}, order: []string{"cdrom", "isofs"}},
		{want: []string{"isofs", "usb-storage", "ext4", "uas"}, order: []string{"cdrom", "isofs"}, missing: "usb_storage, uas ("},
	} {
		got, err := ix.Closure(tc.want...)
		if !reflect.DeepEqual(names(got), tc.order) {
			t.Errorf("Closure(%v) = %v, want %v", tc.want, names(got), tc.order)
		}
		switch {
		case tc.missing == "" && err != nil:
			t.Errorf("Closure(%v): %v", tc.want, err)
		case tc.missing != "" && (!errors.Is(err, ErrMissingModules) || !strings.Contains(err.Error(), tc.missing)):
			t.Errorf("Closure(%v) error = %v, want ErrMissingModules naming %q", tc.want, err, tc.missing)
		}
	}
}

func TestClosureMissingDependency(t *testing.T) {
	ix := NewIndex()
	if err := ix.ParseModulesDep(strings.NewReader("kernel/a.ko: kernel/b.ko\n")); err != nil {
		t.Fatal(err)
	}
	_, err := ix.Closure("a")
	if !errors.Is(err, ErrMissingModules) || !strings.Contains(err.Error(), "b (needed by a)") {
		t.Errorf("Closure(a) = %v, want b reported as needed by a", err)
	}
}

func TestClosureCycle(t *testing.T) {
	ix := NewIndex()
	ix.Modules["a"] = &Module{Name: "a", Path: "a.ko", Depends: []string{"b"}}
	ix.Modules["b"] = &Module{Name: "b", Path: "b.ko", Depends: []string{"a"}}
	if _, err := ix.Closure("a"); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("Closure on a cycle = %v, want a cycle error", err)
	}
}

func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{
		"nls_iso8859-1":                    "nls_iso8859_1",
		"kernel/fs/nls/nls_iso8859-1.ko":   "nls_iso8859_1",
		"kernel/drivers/md/dm-crypt.ko.xz": "dm_crypt",
		"usb-storage":                      "usb_storage",
		"ext4":                             "ext4",
	} {
		if got := CanonicalName(in); got != want {
			t.Errorf("CanonicalName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExtract runs a fake package tree through Extract, then reads the
// written directory back with LoadIndex: the generated modules.dep must
// give the same load order as the .modinfo it came from.
func TestExtract(t *testing.T) {
	const v = "6.1.0-test"
	files := map[string][]byte{
		"boot/vmlinuz-" + v:                         []byte("not really a kernel"),
		"lib/modules/" + v + "/kernel/fs/isofs.ko":  fakeKO("alias=fs-iso9660", "depends=cdrom", "name=isofs", "vermagic="+v),
		"lib/modules/" + v + "/kernel/cd/cdrom.ko":  fakeKO("name=cdrom"),
		"lib/modules/" + v + "/kernel/nls/nls-x.ko": fakeKO("depends="),
		"lib/modules/" + v + "/modules.builtin":     []byte("kernel/fs/ext4/ext4.ko\n"),
		"usr/share/doc/linux-image/changelog.gz":    []byte("ignored"),
	}
	s := &entry.Slice{Bodies: files}
	for _, p := range []string{"boot/vmlinuz-" + v, "lib/modules/" + v + "/kernel/fs/isofs.ko", "lib/modules/" + v + "/kernel/cd/cdrom.ko",
		"lib/modules/" + v + "/kernel/nls/nls-x.ko", "lib/modules/" + v + "/modules.builtin", "usr/share/doc/linux-image/changelog.gz"} {
		s.Headers = append(s.Headers, &entry.Header{Path: p, Type: entry.TypeRegular, Mode: 0o644, Size: int64(len(files[p]))})
	}
	dir := t.TempDir()
	opts := ExtractOptions{Vmlinuz: filepath.Join(dir, "vmlinuz"), ModulesDir: filepath.Join(dir, "modules")}
	k, err := Extract(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != v {
		t.Errorf("Version = %q, want %q", k.Version, v)
	}
	if got, _ := os.ReadFile(opts.Vmlinuz); !bytes.Equal(got, files["boot/vmlinuz-"+v]) {
		t.Errorf("vmlinuz = %q", got)
	}
	want := []string{"cdrom", "isofs", "nls_x"}
	order, err := k.Modules.Closure("isofs", "nls-x", "ext4")
	if err != nil || !reflect.DeepEqual(names(order), want) {
		t.Fatalf("Closure from .modinfo = %v, %v; want %v", names(order), err, want)
	}
	if got := k.Modules.Aliases; len(got) != 1 || got[0] != (Alias{"fs-iso9660", "isofs"}) {
		t.Errorf("Aliases = %v", got)
	}
	ix, err := LoadIndex(opts.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	order, err = ix.Closure("isofs", "nls-x", "ext4")
	if err != nil || !reflect.DeepEqual(names(order), want) {
		t.Errorf("Closure from the written modules.dep = %v, %v; want %v", names(order), err, want)
	}
	if _, err := os.Stat(filepath.Join(opts.ModulesDir, "kernel/fs/isofs.ko")); err != nil {
		t.Error(err)
	}
}

func TestExtractNotAKernel(t *testing.T) {
	s := &entry.Slice{Headers: []*entry.Header{{Path: "usr/bin/x", Type: entry.TypeRegular}}}
	if _, err := Extract(s, ExtractOptions{}); err == nil {
		t.Error("Extract of a package without lib/modules succeeded")
	}
}

package clone

import (
	"bytes"
	"crypto/aes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/xts"
	"golang.org/x/sys/unix"

	"byzantium/ci/testenv"
	"byzantium/runtime/luks2"
)

var cheapKDF = luks2.KDFParams{Type: "argon2id", Time: 1, Memory: 8 << 10, Threads: 1}

// upperTree makes an overlay upper folder as a node has one: files of
// several owners, a secret, a deletion (a whiteout: character device
// 0:0) and an opaque folder (trusted.overlay.opaque), and a file whose
// content is a marker to look for in the clear.
func upperTree(t *testing.T, marker string) string {
	t.Helper()
	state := t.TempDir()
	w := func(p, s string, uid int) {
		t.Helper()
		full := filepath.Join(state, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(full, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	w("root/zz-carried-QW7.txt", marker, 0)
	w("home/irc/notes", "irc notes", 1234)
	w("var/lib/byzantium/tls/key.pem", "SECRET KEY", 0)
	w("var/lib/byzantium/node-id", "node-1", 0)
	w("etc/opaque/new", "only this", 0)
	if err := unix.Mknod(filepath.Join(state, "etc/deleted"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(state, "etc/opaque"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		testenv.Unavailable(t, "trusted xattrs on "+state+": "+err.Error())
	}
	return state
}

// TestCloneStateEncrypted: with a passphrase, the node's changes go into
// the new save.dat's upper layer, under its encryption: the clone has no
// state module, and neither the marker's content nor its name is
// anywhere on the stick in the clear; unlocked, the save.dat is a clean
// ext4 whose upper/ holds the changes as the node had them (owners,
// whiteout, opaque folder), without the secrets, beside work/. The
// mount it took was private and is gone.
func TestCloneStateEncrypted(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "losetup")
	m := sourceMedia(t)
	const marker = "plaintext-state-marker-5d1f0c"
	state := upperTree(t, marker)
	s, err := OpenSource(m.img)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pass := []byte("clone-pass")
	opts := Options{SaveSize: 64 << 20, Passphrase: pass, KDF: cheapKDF, State: state, Now: epoch}
	p, err := NewPlan(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	p.Print(&b, 0)
	if !p.StateInSaveDat || strings.Contains(b.String(), "999-state") || !strings.Contains(b.String(), "inside the encrypted save.dat") {
		t.Errorf("the plan:\n%s", b.String())
	}
	scratch := t.TempDir()
	opts.TempDir = scratch
	img := filepath.Join(t.TempDir(), "clone.img")
	res, err := cloneTo(t, s, opts, img, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.StateModule != "" || !res.StateInSaveDat {
		t.Errorf("result: state module %q, in the save.dat %v", res.StateModule, res.StateInSaveDat)
	}
	for _, f := range readIDs(t, img).manifest.Files {
		if strings.Contains(f.Path, "state") {
			t.Errorf("the clone has %s", f.Path)
		}
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{marker, "zz-carried-QW7", "irc notes"} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Errorf("%q is on the stick in the clear", clear)
		}
	}
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Errorf("scratch left: %v", ents)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte("save.dat-fs")) {
		t.Errorf("the save.dat's mount is visible or left behind:\n%s", mi)
	}

	// Unlock the save.dat as byz-init would, and look inside.
	tree := mtoolsTree(t, img)
	sd, err := os.Open(filepath.Join(tree, "byzantium/changes/save.dat"))
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	h, err := luks2.Read(sd)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := luks2.Unlock(sd, h, pass)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := xts.NewCipher(aes.NewCipher, key)
	data := make([]byte, 64<<20-luks2.DataOffset)
	if _, err := sd.ReadAt(data, luks2.DataOffset); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(data); i += 4096 {
		c.Decrypt(data[i:i+4096], data[i:i+4096], uint64(i/4096))
	}
	plain := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(plain, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(testenv.RequireTool(t, "e2fsck"), "-fn", plain).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", plain, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	up := filepath.Join(mnt, "upper")
	if got, err := os.ReadFile(filepath.Join(up, "root/zz-carried-QW7.txt")); err != nil || string(got) != marker {
		t.Errorf("the change in upper/: %q, %v", got, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(up, "home/irc/notes"), &st); err != nil || st.Uid != 1234 || st.Mode&0o777 != 0o640 {
		t.Errorf("home/irc/notes: uid %d mode %o, %v", st.Uid, st.Mode&0o777, err)
	}
	if err := unix.Lstat(filepath.Join(up, "etc/deleted"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("the whiteout etc/deleted: mode %o rdev %d, %v", st.Mode, st.Rdev, err)
	}
	v := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(up, "etc/opaque"), "trusted.overlay.opaque", v); err != nil || string(v[:n]) != "y" {
		t.Errorf("etc/opaque is not opaque: %q, %v", v[:n], err)
	}
	for _, secret := range []string{"var/lib/byzantium/tls", "var/lib/byzantium/node-id"} {
		if _, err := os.Lstat(filepath.Join(up, secret)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the secret %s went along: %v", secret, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(mnt, "work")); err != nil || !fi.IsDir() {
		t.Errorf("no work/ beside upper/: %v", err)
	}
}

// TestCloneStateTooBig: changes that cannot fit the encrypted save.dat
// are refused by the plan, with the size that would hold them.
func TestCloneStateTooBig(t *testing.T) {
	testenv.RequireRoot(t)
	m := sourceMedia(t)
	state := t.TempDir()
	for i := range 3 {
		f, err := os.Create(filepath.Join(state, "big"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(20 << 20)
		f.Close()
	}
	s, err := OpenSource(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewPlan(s, Options{SaveSize: 64 << 20, Passphrase: []byte("x"), State: state})
	if !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), "do not fit in an encrypted save.dat of 64 MiB") || !strings.Contains(err.Error(), "--save-size 88M or more") {
		t.Errorf("60 MiB of changes in a 64 MiB save.dat: %v", err)
	}
	// The size it asks for does hold them.
	img := filepath.Join(t.TempDir(), "clone.img")
	if _, err := cloneTo(t, s, Options{SaveSize: 88 << 20, Passphrase: []byte("x"), KDF: cheapKDF, State: state, TempDir: t.TempDir()}, img, 0); err != nil {
		t.Errorf("in the size it asked for: %v", err)
	}
}

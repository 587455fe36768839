package mkfs

import (
	"crypto/aes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"

	"golang.org/x/crypto/xts"
)

var cheapKDF = luks2.KDFParams{Type: "argon2id", Time: 1, Memory: 8 << 10, Threads: 1}

// TestPlain: e2fsck -fn finds nothing wrong with a plain save.dat, and it
// carries its label and a journal, at a size of one block group and of
// several.
func TestPlain(t *testing.T) {
	for _, size := range []int64{64 << 20, 1 << 30} {
		p := filepath.Join(t.TempDir(), "save.dat")
		if err := Create(p, Options{Size: size}); err != nil {
			t.Fatal(err)
		}
		checkExt4(t, p)
	}
	p := filepath.Join(t.TempDir(), "byzantium/changes/save.dat")
	if err := Create(p, Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := Create(p, Options{Size: 64 << 20}); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Errorf("a second Create over it: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}

// TestEncrypted: cryptsetup accepts the header and the passphrase, and the
// data, decrypted on the host with the volume key, is a clean ext4.
func TestEncrypted(t *testing.T) {
	cs := testenv.RequireTool(t, "cryptsetup")
	dir := t.TempDir()
	p := filepath.Join(dir, "save.dat")
	if err := Create(p, Options{Size: 64 << 20, Passphrase: []byte("mesh"), KDF: cheapKDF}); err != nil {
		t.Fatal(err)
	}
	kf := filepath.Join(dir, "kf")
	if err := os.WriteFile(kf, []byte("mesh"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", kf, p).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup open --test-passphrase: %v\n%s", err, out)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := luks2.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if s := h.Metadata.Segments["0"]; s.SectorSize != 4096 {
		t.Errorf("segment sector size %d, want 4096", s.SectorSize)
	}
	key, _, err := luks2.Unlock(f, h, []byte("mesh"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64<<20-luks2.DataOffset)
	if _, err := f.ReadAt(data, luks2.DataOffset); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(data); i += 4096 {
		c.Decrypt(data[i:i+4096], data[i:i+4096], uint64(i/4096))
	}
	plain := filepath.Join(dir, "plain.img")
	if err := os.WriteFile(plain, data, 0o600); err != nil {
		t.Fatal(err)
	}
	checkExt4(t, plain)
}

func checkExt4(t *testing.T, p string) {
	t.Helper()
	if out, err := exec.Command(testenv.RequireTool(t, "e2fsck"), "-fn", p).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
	out, err := exec.Command(testenv.RequireTool(t, "dumpe2fs"), "-h", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Filesystem volume name:   "+DefaultLabel) ||
		!strings.Contains(string(out), "has_journal") || !strings.Contains(string(out), "Block size:               4096") {
		t.Errorf("dumpe2fs -h: %v\n%s", err, out)
	}
}

func TestBadOptions(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []Options{
		{Size: 16 << 20},
		{Size: 64<<20 + 1},
		{Size: 40 << 20, Passphrase: []byte("x")}, // no room after the LUKS2 header
		{Size: 64 << 20, Passphrase: []byte{}},
		{Size: 64 << 20, Label: strings.Repeat("x", 17)},
	} {
		if err := Create(filepath.Join(dir, "save.dat"), o); !errors.Is(err, savedat.ErrBadOption) {
			t.Errorf("Create(%+v) = %v, want savedat.ErrBadOption", o, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused Creates left %v", ents)
	}
}

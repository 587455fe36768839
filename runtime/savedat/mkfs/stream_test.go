package mkfs

import (
	"crypto/aes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"byzantium/ci/testenv"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"

	"golang.org/x/crypto/xts"
)

// streamTo writes a Stream out to a file, checking its length.
func streamTo(t *testing.T, scratch, p string, opts Options) {
	t.Helper()
	s, err := NewStream(scratch, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := io.Copy(f, s)
	if err != nil || n != opts.Size || s.Size != opts.Size {
		t.Fatalf("stream: %d bytes of %d (Size %d): %v", n, opts.Size, s.Size, err)
	}
}

// TestStream: a streamed save.dat, plain or encrypted, is as good as one
// Create makes (e2fsck clean; cryptsetup takes the passphrase and the
// decrypted data is a clean ext4).
func TestStream(t *testing.T) {
	dir, scratch := t.TempDir(), t.TempDir()
	p := filepath.Join(dir, "plain.dat")
	streamTo(t, scratch, p, Options{Size: 64 << 20})
	checkExt4(t, p)

	cs := testenv.RequireTool(t, "cryptsetup")
	e := filepath.Join(dir, "enc.dat")
	streamTo(t, scratch, e, Options{Size: 64 << 20, Passphrase: []byte("dawn"), KDF: cheapKDF})
	kf := filepath.Join(dir, "kf")
	if err := os.WriteFile(kf, []byte("dawn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", kf, e).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup open --test-passphrase: %v\n%s", err, out)
	}
	f, err := os.Open(e)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := luks2.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := luks2.Unlock(f, h, []byte("dawn"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := xts.NewCipher(aes.NewCipher, key)
	data := make([]byte, 64<<20-luks2.DataOffset)
	if _, err := f.ReadAt(data, luks2.DataOffset); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(data); i += 4096 {
		c.Decrypt(data[i:i+4096], data[i:i+4096], uint64(i/4096))
	}
	plain := filepath.Join(dir, "dec.img")
	if err := os.WriteFile(plain, data, 0o600); err != nil {
		t.Fatal(err)
	}
	checkExt4(t, plain)

	if _, err := NewStream(dir, Options{Size: 16 << 20}); !errors.Is(err, savedat.ErrBadOption) {
		t.Errorf("too small: %v", err)
	}
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Errorf("scratch files left: %v", ents)
	}
}

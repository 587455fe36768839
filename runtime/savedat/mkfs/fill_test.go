package mkfs

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"byzantium/runtime/luks2"

	"golang.org/x/crypto/xts"
)

// TestFill: Options.Fill gets the new ext4 file system in the clear, at
// the start of its file, before it is encrypted; what it writes is in the
// save.dat (under the encryption, for an encrypted one), from Create and
// from NewStream alike. An error from it fails both and leaves nothing.
func TestFill(t *testing.T) {
	mark := []byte("written-by-fill")
	const size = 64 << 20
	for _, encrypted := range []bool{false, true} {
		opts := Options{Size: size}
		fsSize := int64(size)
		if encrypted {
			opts.Passphrase, opts.KDF = []byte("dawn"), cheapKDF
			fsSize -= luks2.DataOffset
		}
		calls := 0
		opts.Fill = func(f *os.File) error {
			calls++
			sb := make([]byte, 2)
			if _, err := f.ReadAt(sb, 1024+0x38); err != nil || binary.LittleEndian.Uint16(sb) != 0xEF53 {
				t.Errorf("Fill got no ext4 superblock at 1024: %x %v", sb, err)
			}
			if fi, err := f.Stat(); err != nil || fi.Size() < fsSize {
				t.Errorf("Fill got a file of %v bytes, the file system is %d", fi.Size(), fsSize)
			}
			// The last block is free in a new file system.
			_, err := f.WriteAt(mark, fsSize-4096)
			return err
		}
		dir := t.TempDir()
		created := filepath.Join(dir, "created.dat")
		if err := Create(created, opts); err != nil {
			t.Fatal(err)
		}
		streamed := filepath.Join(dir, "streamed.dat")
		streamTo(t, t.TempDir(), streamed, opts)
		if calls != 2 {
			t.Errorf("Fill called %d times for two save.dats", calls)
		}
		for _, p := range []string{created, streamed} {
			plain := plainFS(t, p, opts.Passphrase)
			if !bytes.Equal(plain[fsSize-4096:fsSize-4096+int64(len(mark))], mark) {
				t.Errorf("%s (encrypted %v): what Fill wrote is not in the file system", filepath.Base(p), encrypted)
			}
			if raw, _ := os.ReadFile(p); encrypted && bytes.Contains(raw, mark) {
				t.Errorf("%s: what Fill wrote is in the clear in an encrypted save.dat", filepath.Base(p))
			}
			checkExt4(t, writeTemp(t, plain))
		}

		boom := errors.New("boom")
		opts.Fill = func(*os.File) error { return boom }
		failed := filepath.Join(dir, "failed.dat")
		if err := Create(failed, opts); !errors.Is(err, boom) {
			t.Errorf("Create with a failing Fill: %v", err)
		}
		if _, err := os.Stat(failed); err == nil {
			t.Error("a failed Create left its file")
		}
		if _, err := NewStream(t.TempDir(), opts); !errors.Is(err, boom) {
			t.Errorf("NewStream with a failing Fill: %v", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 2 {
			t.Errorf("left: %v", ents)
		}
	}
}

// plainFS reads a save.dat's ext4 file system, decrypted when it has a
// passphrase.
func plainFS(t *testing.T, p string, pass []byte) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if pass == nil {
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	h, err := luks2.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := luks2.Unlock(f, h, pass)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := xts.NewCipher(aes.NewCipher, key)
	fi, _ := f.Stat()
	data := make([]byte, fi.Size()-luks2.DataOffset)
	if _, err := f.ReadAt(data, luks2.DataOffset); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(data); i += 4096 {
		c.Decrypt(data[i:i+4096], data[i:i+4096], uint64(i/4096))
	}
	return data
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

package luks2

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

// cheap KDF costs: these tests are about the format, not the KDF.
var testKDFs = map[string]KDFParams{
	"argon2id": {Type: "argon2id", Time: 2, Memory: 16 << 10, Threads: 2},
	"pbkdf2":   {Type: "pbkdf2", Iterations: 5000},
}

// TestFormatCryptsetupReads formats volumes with Format and has cryptsetup
// read them: luksDump accepts the header and shows our UUID and label, and
// open --test-passphrase unlocks keyslot 0 with the passphrase and
// refuses another. Our own Unlock gives back Format's volume key.
func TestFormatCryptsetupReads(t *testing.T) {
	cs := testenv.RequireTool(t, "cryptsetup")
	for name, kdf := range testKDFs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "save.dat")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(DataOffset + 4<<20); err != nil {
				t.Fatal(err)
			}
			h, key, err := Format(f, FormatOptions{Passphrase: []byte("mesh at dawn"), KDF: kdf, Label: "byz-save", SectorSize: 512})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(cs, "luksDump", img).CombinedOutput()
			if err != nil {
				t.Fatalf("cryptsetup luksDump: %v\n%s", err, out)
			}
			for _, want := range []string{"Version:       \t2", "UUID:          \t" + h.UUID, "Label:         \tbyz-save",
				"PBKDF:      " + name, "cipher: aes-xts-plain64", "AF stripes: 4000", "offset: 16777216 [bytes]"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("luksDump lacks %q:\n%s", want, out)
				}
			}
			for pass, ok := range map[string]bool{"mesh at dawn": true, "mesh at dusk": false} {
				kf := filepath.Join(dir, "key")
				if err := os.WriteFile(kf, []byte(pass), 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", kf, img).CombinedOutput()
				if (err == nil) != ok {
					t.Errorf("cryptsetup open --test-passphrase with %q: %v (want success %v)\n%s", pass, err, ok, out)
				}
			}
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			h2, err := Read(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := Unlock(bytes.NewReader(b), h2, []byte("mesh at dawn"))
			if err != nil || !bytes.Equal(got, key) {
				t.Errorf("Unlock of our own volume: %v (same key: %v)", err, bytes.Equal(got, key))
			}
		})
	}
}

func TestFormatBadOptions(t *testing.T) {
	var w sliceWriter
	for _, o := range []FormatOptions{
		{},
		{Passphrase: []byte("x"), KDF: KDFParams{Type: "scrypt"}},
		{Passphrase: []byte("x"), KDF: KDFParams{Type: "pbkdf2", Iterations: 10}},
		{Passphrase: []byte("x"), KDF: KDFParams{Type: "argon2id", Time: 1, Memory: 1 << 30, Threads: 1}},
		{Passphrase: []byte("x"), SectorSize: 1024},
		{Passphrase: []byte("x"), Label: strings.Repeat("l", 48)},
	} {
		if _, _, err := Format(&w, o); !errors.Is(err, ErrBadFormatOption) {
			t.Errorf("Format(%+v) = %v, want ErrBadFormatOption", o, err)
		}
	}
	if len(w.b) != 0 {
		t.Errorf("a refused Format wrote %d bytes", len(w.b))
	}
}

type sliceWriter struct{ b []byte }

func (s *sliceWriter) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(s.b) {
		s.b = append(s.b, make([]byte, end-len(s.b))...)
	}
	return copy(s.b[off:], p), nil
}

// TestChangePassphrase adds a passphrase to a volume cryptsetup made and
// removes the original, the way a node changes its passphrase: cryptsetup
// then opens it with the new passphrase only, still reads the header, and
// our Unlock gives the same volume key.
func TestChangePassphrase(t *testing.T) {
	cs := testenv.RequireTool(t, "cryptsetup")
	b, _ := formatted(t, "argon2id")
	dir := t.TempDir()
	img := filepath.Join(dir, "v.img")
	if err := os.WriteFile(img, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := Unlock(f, h, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AddKey(f, h, bytes.Repeat([]byte{1}, 64), []byte("x"), testKDFs["pbkdf2"], nil); err == nil {
		t.Error("AddKey with a key that is not the volume's succeeded")
	}
	slot, err := AddKey(f, h, key, []byte("battery staple"), testKDFs["argon2id"], nil)
	if err != nil || slot != "1" {
		t.Fatalf("AddKey = %q, %v", slot, err)
	}
	if err := RemoveKey(f, h, "0"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveKey(f, h, "1"); err == nil {
		t.Error("RemoveKey of the last keyslot succeeded")
	}
	for pass, ok := range map[string]bool{"battery staple": true, "correct horse": false} {
		kf := filepath.Join(dir, "key")
		if err := os.WriteFile(kf, []byte(pass), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", kf, img).CombinedOutput()
		if (err == nil) != ok {
			t.Errorf("cryptsetup open --test-passphrase with %q: %v (want success %v)\n%s", pass, err, ok, out)
		}
	}
	out, err := exec.Command(cs, "luksDump", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Epoch:         \t5") || strings.Contains(string(out), "  0: luks2") {
		t.Errorf("luksDump after the change (want epoch 3+2 and no keyslot 0): %v\n%s", err, out)
	}
	h2, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	got, slot2, err := Unlock(f, h2, []byte("battery staple"))
	if err != nil || slot2 != "1" || !bytes.Equal(got, key) {
		t.Errorf("Unlock after the change: slot %q, %v, same key %v", slot2, err, bytes.Equal(got, key))
	}
	// The removed keyslot's area is wiped.
	area := make([]byte, 4096)
	if _, err := f.ReadAt(area, keyslotsStart); err != nil || !bytes.Equal(area, make([]byte, 4096)) {
		t.Errorf("keyslot 0's area is not wiped (%v)", err)
	}
}

// TestLocalKDFMemory: what is asked, or the default, never above half of
// this machine's RAM.
func TestLocalKDFMemory(t *testing.T) {
	ram := physicalRAMKiB()
	if ram == 0 {
		t.Fatal("no RAM size on this machine")
	}
	for _, asked := range []int{0, -1, 64, 512 << 10, 1 << 20, 4 << 20} {
		want := int64(asked)
		if asked <= 0 {
			want = int64(DefaultKDF.Memory)
		}
		want = min(want, ram/2)
		if got := LocalKDFMemory(asked); int64(got) != want {
			t.Errorf("LocalKDFMemory(%d) = %d, want %d (RAM %d KiB)", asked, got, want, ram)
		}
	}
}

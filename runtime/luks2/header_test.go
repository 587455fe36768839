package luks2

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

// formatted makes a 20 MiB volume with cryptsetup luksFormat (cheap KDF
// costs: this tests the header, not the KDF) and returns its bytes.
func formatted(t *testing.T, pbkdf string) ([]byte, string) {
	t.Helper()
	cs := testenv.RequireTool(t, "cryptsetup")
	dir := t.TempDir()
	img, key := filepath.Join(dir, "v.img"), filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("correct horse"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, make([]byte, 20<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"luksFormat", "--type", "luks2", "--batch-mode", "--key-file", key, "--pbkdf", pbkdf, "--label", "byz-save", "--iter-time", "50"}
	if pbkdf != "pbkdf2" {
		args = append(args, "--pbkdf-memory", "32768")
	}
	if out, err := exec.Command(cs, append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup luksFormat: %v\n%s", err, out)
	}
	out, err := exec.Command(cs, "luksUUID", img).Output()
	if err != nil {
		t.Fatalf("cryptsetup luksUUID: %v", err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b, strings.TrimSpace(string(out))
}

// TestReadCryptsetup reads headers cryptsetup wrote, with an argon2id and
// a pbkdf2 keyslot, and checks what luksDump would show.
func TestReadCryptsetup(t *testing.T) {
	for _, kdf := range []string{"argon2id", "pbkdf2"} {
		t.Run(kdf, func(t *testing.T) {
			b, uuid := formatted(t, kdf)
			h, err := Read(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if h.UUID != uuid || h.Label != "byz-save" || h.Version != 2 || h.Copy != "primary" || h.HdrSize != 16384 {
				t.Errorf("header %+v; cryptsetup says UUID %s", h, uuid)
			}
			ks, ok := h.Metadata.Keyslots["0"]
			if !ok || ks.KDF.Type != kdf || len(ks.KDF.Salt) != 32 || ks.KeySize != 64 || ks.AF.Stripes != 4000 ||
				ks.Area.Encryption != "aes-xts-plain64" {
				t.Errorf("keyslot 0: %+v", ks)
			}
			if kdf == "argon2id" && (ks.KDF.Memory != 32768 || ks.KDF.Time < 4) {
				t.Errorf("argon2id costs: %+v", ks.KDF)
			}
			if kdf == "pbkdf2" && (ks.KDF.Hash != "sha256" || ks.KDF.Iterations < 1000) {
				t.Errorf("pbkdf2 parameters: %+v", ks.KDF)
			}
			seg := h.Metadata.Segments["0"]
			if seg.Encryption != "aes-xts-plain64" || seg.Size != "dynamic" || seg.Type != "crypt" {
				t.Errorf("segment 0: %+v", seg)
			}
			d := h.Metadata.Digests["0"]
			if d.Type != "pbkdf2" || len(d.Digest) != 32 || len(d.Keyslots) != 1 || d.Keyslots[0] != "0" {
				t.Errorf("digest 0: %+v", d)
			}
		})
	}
}

// TestTornHeader: with one copy damaged the other is used; with both
// damaged the error names what is wrong with each.
func TestTornHeader(t *testing.T) {
	b, uuid := formatted(t, "pbkdf2")
	broken := bytes.Clone(b)
	broken[binHeaderSize+10] ^= 0xff // the primary's JSON area
	h, err := Read(bytes.NewReader(broken))
	if err != nil || h.Copy != "secondary" || h.UUID != uuid {
		t.Fatalf("primary damaged: %+v, %v; want the secondary", h, err)
	}
	broken[0] = 'X' // and its magic: the secondary is searched for
	if h, err = Read(bytes.NewReader(broken)); err != nil || h.Copy != "secondary" {
		t.Fatalf("primary magic gone: %+v, %v; want the secondary", h, err)
	}
	broken = bytes.Clone(b)
	broken[16384+binHeaderSize+10] ^= 0xff
	if h, err = Read(bytes.NewReader(broken)); err != nil || h.Copy != "primary" {
		t.Fatalf("secondary damaged: %+v, %v; want the primary", h, err)
	}
	broken[binHeaderSize+10] ^= 0xff
	_, err = Read(bytes.NewReader(broken))
	if !errors.Is(err, ErrNotLUKS2) || !strings.Contains(err.Error(), "primary: checksum mismatch") ||
		!strings.Contains(err.Error(), "secondary: checksum mismatch") {
		t.Errorf("both damaged: %v", err)
	}
	if _, err := Read(bytes.NewReader(make([]byte, 1<<20))); !errors.Is(err, ErrNotLUKS2) {
		t.Errorf("zeros: %v", err)
	}
}

// TestNewerCopyWins: the copy with the higher sequence number is the one
// a crash left half-updated on the other.
func TestNewerCopyWins(t *testing.T) {
	b, _ := formatted(t, "pbkdf2")
	second := b[16384 : 2*16384]
	binary.BigEndian.PutUint64(second[offSeqID:], binary.BigEndian.Uint64(second[offSeqID:])+1)
	clear(second[offCsum : offCsum+csumLen])
	sum := sha256.Sum256(second)
	copy(second[offCsum:], sum[:])
	h, err := Read(bytes.NewReader(b))
	if err != nil || h.Copy != "secondary" {
		t.Fatalf("Read = %+v, %v; want the newer secondary", h, err)
	}
}

// synthetic returns a two-copy header with a minimal JSON area and a
// keyslots area of one keyslot, built here rather than by cryptsetup, as
// a fuzz seed.
func synthetic() []byte {
	const size = 16384
	js := `{"keyslots":{"0":{"type":"luks2","key_size":64,"area":{"type":"raw","offset":"32768","size":"258048","encryption":"aes-xts-plain64","key_size":64},"kdf":{"type":"pbkdf2","hash":"sha256","iterations":1000,"salt":"AAAA"},"af":{"type":"luks1","stripes":4000,"hash":"sha256"}}},"tokens":{},"segments":{"0":{"type":"crypt","offset":"290816","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512}},"digests":{"0":{"type":"pbkdf2","keyslots":["0"],"segments":["0"],"hash":"sha256","iterations":1000,"salt":"AAAA","digest":"AAAA"}},"config":{"json_size":"12288","keyslots_size":"258048"}}`
	out := make([]byte, 2*size+258048)
	for i, magic := range [][]byte{magicPrimary, magicSecondary} {
		c := out[i*size : (i+1)*size]
		copy(c, magic)
		binary.BigEndian.PutUint16(c[offVersion:], 2)
		binary.BigEndian.PutUint64(c[offHdrSize:], size)
		binary.BigEndian.PutUint64(c[offSeqID:], 1)
		copy(c[offCsumAlg:], "sha256")
		copy(c[offUUID:], "0b5e4c2a-1d3f-4e5a-9b8c-7d6e5f4a3b2c")
		binary.BigEndian.PutUint64(c[offHdrOffset:], uint64(i*size))
		copy(c[binHeaderSize:], js)
		sum := sha256.Sum256(c)
		copy(c[offCsum:], sum[:])
	}
	return out
}

func TestSynthetic(t *testing.T) {
	h, err := Read(bytes.NewReader(synthetic()))
	if err != nil || h.Copy != "primary" || h.Metadata.Keyslots["0"].KDF.Iterations != 1000 {
		t.Fatalf("Read = %+v, %v", h, err)
	}
}

// FuzzRead: no input makes Read panic or accept a header it should not.
func FuzzRead(f *testing.F) {
	f.Add(synthetic())
	f.Add(append(append([]byte{}, magicPrimary...), 0, 2, 0, 0, 0, 0, 0, 0, 0x40, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Read(bytes.NewReader(data))
		if err == nil && (h.Version != 2 || h.HdrSize > maxHeaderSize || h.CsumAlg != "sha256") {
			t.Errorf("accepted %+v", h)
		}
	})
}

// TestUnlockCryptsetup opens volumes cryptsetup made (argon2id and pbkdf2
// keyslots) and refuses a wrong passphrase. The digest check inside
// Unlock is itself the proof: only the right volume key passes it.
func TestUnlockCryptsetup(t *testing.T) {
	for _, kdf := range []string{"argon2id", "pbkdf2"} {
		t.Run(kdf, func(t *testing.T) {
			b, _ := formatted(t, kdf)
			h, err := Read(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			key, slot, err := Unlock(bytes.NewReader(b), h, []byte("correct horse"))
			if err != nil || slot != "0" || len(key) != 64 {
				t.Fatalf("Unlock = %d-byte key, slot %q, %v", len(key), slot, err)
			}
			if _, _, err := Unlock(bytes.NewReader(b), h, []byte("correct horse ")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("wrong passphrase: %v", err)
			}
		})
	}
}

// FuzzCheckArea: the JSON area checks (behind the checksum, so FuzzRead
// seldom reaches them) never panic, and what they accept is an object
// that validates again the same and fits its area written compact.
func FuzzCheckArea(f *testing.F) {
	b := synthetic()
	f.Add(bytes.Clone(b[binHeaderSize:16384]))
	f.Add([]byte(`{"keyslots":{},"tokens":{},"segments":{},"digests":{},"config":{}}` + "\x00"))
	f.Fuzz(func(t *testing.T, area []byte) {
		if len(area) == 0 {
			return
		}
		root, err := checkArea(area)
		if err != nil {
			return
		}
		if err := validateTree(root, uint64(len(area))); err != nil {
			t.Errorf("accepted, then refused: %v", err)
		}
		if n := len(root.compact()); n > len(area) {
			t.Errorf("accepted metadata of %d bytes in a %d-byte area", n, len(area))
		}
	})
}

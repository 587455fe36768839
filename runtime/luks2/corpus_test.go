package luks2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

// corpusDir is cryptsetup's LUKS2 test data (shared/corpus/luks2, see
// its SOURCES.md), read in place.
func corpusDir(t testing.TB) string {
	t.Helper()
	return testenv.SharedCorpus(t, "luks2")
}

// TestValidationCorpus reads the 85 headers cryptsetup's
// luks2-validation-test makes (and the valid one they are made from) and
// checks each verdict against cryptsetup's: R, read; F, refused.
func TestValidationCorpus(t *testing.T) {
	dir := corpusDir(t)
	expect, err := os.ReadFile(filepath.Join(dir, "luks2-validation.expect"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(expect)), "\n") {
		name, verdict, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || (verdict != "R" && verdict != "F") {
			t.Fatalf("luks2-validation.expect: bad line %q", line)
		}
		want[name] = verdict == "R"
	}
	seen, agree := 0, 0
	testenv.EachTarXZ(t, filepath.Join(dir, "luks2-validation.tar.xz"), func(name string, b []byte) {
		accept, ok := want[name]
		if !ok {
			t.Errorf("%s: not in luks2-validation.expect", name)
			return
		}
		seen++
		_, err := Read(bytes.NewReader(b))
		if (err == nil) == accept {
			agree++
			return
		}
		if accept {
			t.Errorf("%s: cryptsetup reads it; Read refuses it: %v", name, err)
		} else {
			t.Errorf("%s: cryptsetup refuses it; Read accepts it", name)
		}
	})
	if seen != len(want) {
		t.Errorf("read %d headers; luks2-validation.expect lists %d", seen, len(want))
	}
	t.Logf("agree with cryptsetup on %d of %d headers", agree, seen)
}

// corpusCache keeps the images decompressed once per test binary.
var corpusCache = map[string][]byte{}

// corpusImage returns a copy of a cryptsetup test image: file is in the
// corpus's cryptsetup/ folder, a .xz or (with member) a .tar.xz.
func corpusImage(t testing.TB, file, member string) []byte {
	t.Helper()
	path := filepath.Join(corpusDir(t), "cryptsetup", file)
	if member == "" {
		if _, ok := corpusCache[file]; !ok {
			corpusCache[file] = testenv.ReadXZ(t, path)
		}
	} else if _, ok := corpusCache[file+"/"+member]; !ok {
		testenv.EachTarXZ(t, path, func(name string, b []byte) {
			corpusCache[file+"/"+name] = b
		})
		file += "/" + member
	} else {
		file += "/" + member
	}
	b, ok := corpusCache[file]
	if !ok {
		t.Fatalf("the corpus has no %s", file)
	}
	return bytes.Clone(b)
}

// volume is an image in memory being read and updated; it counts writes
// and never grows.
type volume struct {
	b      []byte
	writes int
}

func (v *volume) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(v.b)) {
		return 0, io.EOF
	}
	n := copy(p, v.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (v *volume) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(v.b)) {
		return 0, errors.New("write past the end")
	}
	v.writes++
	return copy(v.b[off:], p), nil
}

// csTestPassphrase runs cryptsetup open --test-passphrase on img (with
// -S slot unless slot is "") and reports whether it accepted pass.
func csTestPassphrase(t *testing.T, cs, img, pass, slot string) bool {
	t.Helper()
	kf := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(kf, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"open", "--test-passphrase", "--key-file", kf}
	if slot != "" {
		args = append(args, "-S", slot)
	}
	return exec.Command(cs, append(args, img)...).Run() == nil
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "v.img")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCorpusUnlock opens cryptsetup's test images with the passphrases
// its tests use: the metadata sizes from 16 KiB to 4 MiB, aes-cbc-essiv
// keyslot areas (pbkdf2 and argon2id), an unbound keyslot whose
// passphrase must open nothing, a header with unmet requirements (the
// passphrase checks, as cryptsetup's --test-passphrase, but it is not
// activated), an unknown data cipher (likewise). cryptsetup agrees on
// each passphrase.
func TestCorpusUnlock(t *testing.T) {
	cs := testenv.RequireTool(t, "cryptsetup")
	type tc struct {
		file, member, pass, slot string
		err, activate            error
	}
	var cases []tc
	for _, kib := range []int{16, 32, 64, 128, 256, 512, 1024, 2048, 4096} {
		cases = append(cases, tc{"luks2_mda_images.tar.xz", "test_image_" + strconv.Itoa(kib), "Qx3qn46vq0v", "0", nil, nil})
	}
	cases = append(cases,
		tc{"compatimage2.img.xz", "", "compatkey", "0", nil, nil},
		tc{"compatimage2.img.xz", "", "0123456789abcdef", "1", nil, nil},
		tc{"compatimage2.img.xz", "", "compatkey ", "", ErrWrongPassphrase, nil},
		tc{"luks2_keyslot_unassigned.img.xz", "", "compatkey", "0", nil, nil},
		tc{"luks2_keyslot_unassigned.img.xz", "", "93R4P4pIqAH8", "", ErrWrongPassphrase, nil},
		tc{"luks2_header_requirements.tar.xz", "luks2_header_requirements", "blablabl", "0", nil, ErrUnmetRequirements},
		tc{"luks2_header_requirements.tar.xz", "luks2_header_requirements_free", "blablabl", "0", nil, nil},
		tc{"luks2_invalid_cipher.img.xz", "", "93R4P4pIqAH8", "0", nil, ErrUnsupported},
	)
	for _, c := range cases {
		t.Run(c.file+"/"+c.member+"/"+c.pass, func(t *testing.T) {
			b := corpusImage(t, c.file, c.member)
			h, err := Read(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if err := h.CheckActivate(); !errors.Is(err, c.activate) || (c.activate == nil) != (err == nil) {
				t.Errorf("CheckActivate = %v, want %v", err, c.activate)
			}
			key, slot, err := Unlock(bytes.NewReader(b), h, []byte(c.pass))
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Errorf("Unlock = slot %q, %v; want %v", slot, err, c.err)
				}
			} else if err != nil || slot != c.slot || len(key) != h.Metadata.Keyslots[slot].KeySize {
				t.Errorf("Unlock = %d-byte key, slot %q, %v; want slot %s", len(key), slot, err, c.slot)
			}
			img := writeTemp(t, b)
			if got := csTestPassphrase(t, cs, img, c.pass, ""); got != (c.err == nil) {
				t.Errorf("cryptsetup open --test-passphrase: %v, we say %v", got, c.err == nil)
			}
		})
	}
}

// TestCorpusRefused: LUKS1 images, cryptsetup's malicious LUKS1 headers
// and a LUKS2 header whose damaged primary copy is now an LVM2 label
// (cryptsetup: "ambiguous signatures") are not read as LUKS2.
func TestCorpusRefused(t *testing.T) {
	for _, f := range []string{"compatimage.img.xz", "compatv10image.img.xz", "valid_header_file.xz",
		"evil_hdr-keyslot_overlap.xz", "evil_hdr-luks_hdr_damage.xz", "evil_hdr-payload_overwrite.xz",
		"evil_hdr-small_luks_device.xz", "evil_hdr-stripes_payload_dmg.xz", "blkid-luks2-pv.img.xz"} {
		b := corpusImage(t, f, "")
		if h, err := Read(bytes.NewReader(b)); !errors.Is(err, ErrNotLUKS2) {
			t.Errorf("%s: Read = %+v, %v; want ErrNotLUKS2", f, h, err)
		}
	}
}

// TestCorpusWrites changes cryptsetup's images the way byz persist
// passphrase does: a header with unmet requirements is refused before
// anything is written (cryptsetup: "Unmet LUKS2 requirements"); the same
// volume without them, every metadata size, and the volume with an
// unbound keyslot take a new keyslot bound to the data, which cryptsetup
// opens; the old one goes; the last bound keyslot stays.
func TestCorpusWrites(t *testing.T) {
	cs := testenv.RequireTool(t, "cryptsetup")
	t.Run("requirements", func(t *testing.T) {
		v := &volume{b: corpusImage(t, "luks2_header_requirements.tar.xz", "luks2_header_requirements")}
		orig := bytes.Clone(v.b)
		h, err := Read(v)
		if err != nil {
			t.Fatal(err)
		}
		key, _, err := Unlock(v, h, []byte("blablabl"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := AddKey(v, h, key, []byte("new"), testKDFs["pbkdf2"], nil); !errors.Is(err, ErrUnmetRequirements) {
			t.Errorf("AddKey = %v, want ErrUnmetRequirements", err)
		}
		if err := RemoveKey(v, h, "0"); !errors.Is(err, ErrUnmetRequirements) {
			t.Errorf("RemoveKey = %v, want ErrUnmetRequirements", err)
		}
		if v.writes != 0 || !bytes.Equal(v.b, orig) {
			t.Errorf("%d writes to a volume with unmet requirements", v.writes)
		}
	})
	change := func(t *testing.T, b []byte, old string) {
		v := &volume{b: b}
		h, err := Read(v)
		if err != nil {
			t.Fatal(err)
		}
		key, slot, err := Unlock(v, h, []byte(old))
		if err != nil {
			t.Fatal(err)
		}
		added, err := AddKey(v, h, key, []byte("mesh at dawn"), testKDFs["pbkdf2"], nil)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Bound(added) {
			t.Errorf("the new keyslot %s is not bound to the data segment", added)
		}
		if err := RemoveKey(v, h, slot); err != nil {
			t.Fatal(err)
		}
		if err := RemoveKey(v, h, added); err == nil {
			t.Error("removing the last bound keyslot succeeded")
		}
		img := writeTemp(t, v.b)
		if out, err := exec.Command(cs, "luksDump", img).CombinedOutput(); err != nil {
			t.Fatalf("cryptsetup luksDump: %v\n%s", err, out)
		}
		if !csTestPassphrase(t, cs, img, "mesh at dawn", "") || csTestPassphrase(t, cs, img, old, "") {
			t.Errorf("cryptsetup does not open keyslot %s with the new passphrase only", added)
		}
		h2, err := Read(bytes.NewReader(v.b))
		if err != nil {
			t.Fatal(err)
		}
		if got, _, err := Unlock(bytes.NewReader(v.b), h2, []byte("mesh at dawn")); err != nil || !bytes.Equal(got, key) {
			t.Errorf("Unlock after the change: %v", err)
		}
	}
	t.Run("free", func(t *testing.T) {
		change(t, corpusImage(t, "luks2_header_requirements.tar.xz", "luks2_header_requirements_free"), "blablabl")
	})
	for _, kib := range []int{16, 128, 4096} {
		t.Run(fmt.Sprintf("mda-%dk", kib), func(t *testing.T) {
			change(t, corpusImage(t, "luks2_mda_images.tar.xz", "test_image_"+strconv.Itoa(kib)), "Qx3qn46vq0v")
		})
	}
	t.Run("unassigned", func(t *testing.T) {
		b := corpusImage(t, "luks2_keyslot_unassigned.img.xz", "")
		v := &volume{b: bytes.Clone(b)}
		h, err := Read(v)
		if err != nil {
			t.Fatal(err)
		}
		if h.Bound("1") || !h.Bound("0") {
			t.Fatal("keyslot 1 is taken as bound, or 0 as unbound")
		}
		// Keyslot 1's passphrase opens nothing, so nothing can change.
		if _, _, err := Unlock(v, h, []byte("93R4P4pIqAH8")); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("Unlock with the unbound keyslot's passphrase: %v", err)
		}
		if err := RemoveKey(v, h, "0"); err == nil {
			t.Error("removing keyslot 0, the only bound one, succeeded")
		}
		if v.writes != 0 {
			t.Errorf("%d writes", v.writes)
		}
		change(t, b, "compatkey")
	})
}

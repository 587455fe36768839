package e2e_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"byzantium/builder/initramfs"
	"byzantium/ci/qemu"
	"byzantium/ci/testenv"
	"byzantium/runtime/luks2"

	"golang.org/x/crypto/xts"
)

// pattern mirrors testdata/dmcheck's Pattern.
func pattern(seed string, n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		s := sha256.Sum256(fmt.Appendf(nil, "%s-%d", seed, i))
		b = append(b, s[:]...)
	}
	return b[:n]
}

// TestLUKS2DMCrypt opens LUKS2 volumes through the guest kernel's
// dm-crypt with runtime/luks2 (the host kernel has no dm-crypt): one made
// by cryptsetup (argon2id, 4096-byte sectors), one made by luks2.Format
// (pbkdf2, 512-byte sectors). The host encrypts a block in Go with the
// volume key; the guest must read it back in clear through dm-crypt and
// write one of its own, which the host then decrypts in Go. Both
// directions agreeing proves the table (cipher, key, offset, sector size,
// IV numbering) is the one cryptsetup would load.
func TestLUKS2DMCrypt(t *testing.T) {
	img := cloudImages(t)
	cs := testenv.RequireTool(t, "cryptsetup")
	dir := t.TempDir()
	dmcheck := filepath.Join(dir, "dmcheck")
	build := exec.Command("go", "build", "-o", dmcheck, "./testdata/dmcheck")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build dmcheck: %v\n%s", err, out)
	}
	// The test's init rides in a second archive after the image's
	// initramfs (the kernel unpacks both): the image's drivers, dmcheck as
	// rdinit.
	extra := filepath.Join(dir, "dmcheck.cpio.zst")
	f, err := os.Create(extra)
	if err != nil {
		t.Fatal(err)
	}
	if err := initramfs.Write(f, []initramfs.File{{Path: "dmcheck", Mode: 0o755, Src: dmcheck}}, initramfs.Options{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a, err := os.ReadFile(img.initrd)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(extra)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.zst")
	if err := os.WriteFile(initrd, append(a, b...), 0o644); err != nil {
		t.Fatal(err)
	}

	const pass = "mesh-at-dawn"
	for _, tc := range []struct {
		name   string
		format func(path string) error
		sector int
	}{
		{"cryptsetup-argon2id-4k", func(path string) error {
			kf := filepath.Join(dir, "kf")
			if err := os.WriteFile(kf, []byte(pass), 0o600); err != nil {
				return err
			}
			out, err := exec.Command(cs, "luksFormat", "--type", "luks2", "--batch-mode", "--key-file", kf,
				"--pbkdf", "argon2id", "--pbkdf-memory", "32768", "--iter-time", "100", "--sector-size", "4096", path).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}, 4096},
		{"ours-pbkdf2-512", func(path string) error {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, key, err := luks2.Format(f, luks2.FormatOptions{Passphrase: []byte(pass),
				KDF: luks2.KDFParams{Type: "pbkdf2", Iterations: 20000}, SectorSize: 512})
			clear(key)
			return err
		}, 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol := filepath.Join(t.TempDir(), "vol.img")
			if err := os.WriteFile(vol, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(vol, luks2.DataOffset+8<<20); err != nil {
				t.Fatal(err)
			}
			if err := tc.format(vol); err != nil {
				t.Fatal(err)
			}
			v, err := os.OpenFile(vol, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			h, err := luks2.Read(v)
			if err != nil {
				t.Fatal(err)
			}
			key, _, err := luks2.Unlock(v, h, []byte(pass))
			if err != nil {
				t.Fatal(err)
			}
			c, err := xts.NewCipher(aes.NewCipher, key)
			if err != nil {
				t.Fatal(err)
			}
			// Data bytes 4096-8191 hold the host's block; IVs count the
			// segment's own sectors.
			hostBlock := pattern("host", 4096)
			enc := make([]byte, 4096)
			for i := 0; i < 4096/tc.sector; i++ {
				c.Encrypt(enc[i*tc.sector:(i+1)*tc.sector], hostBlock[i*tc.sector:(i+1)*tc.sector], uint64(4096/tc.sector+i))
			}
			if _, err := v.WriteAt(enc, luks2.DataOffset+4096); err != nil {
				t.Fatal(err)
			}
			v.Sync()

			ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
			defer cancel()
			vm := qemu.StartT(t, qemu.Config{
				Options: qemu.Options{Kernel: img.vmlinuz, Initrd: initrd, Disk: vol,
					Append: "console=ttyS0 panic=-1 rdinit=/dmcheck dmcheck.pass=" + pass},
				SerialLog: filepath.Join(t.TempDir(), "serial.log"),
			})
			line, err := vm.Expect(ctx, "DMCHECK ")
			if err != nil {
				t.Fatal(err)
			}
			if line != "DMCHECK OK" {
				t.Fatalf("the guest says %q; console:\n%v", line, vm.Tail(20))
			}
			if err := vm.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 4096)
			if _, err := v.ReadAt(got, luks2.DataOffset); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 4096/tc.sector; i++ {
				c.Decrypt(got[i*tc.sector:(i+1)*tc.sector], got[i*tc.sector:(i+1)*tc.sector], uint64(i))
			}
			if !bytes.Equal(got, pattern("guest", 4096)) {
				t.Errorf("the guest's block decrypts on the host to % x…", got[:16])
			}
		})
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"byzantium/runtime/luks2"
)

// luksPairs compare unlocking a LUKS2 volume: runtime/luks2 (read the
// header, derive the key with argon2id, check the digest) against
// cryptsetup open --test-passphrase, which does the same without mapping
// the volume. One volume is made by cryptsetup with its defaults (argon2id
// calibrated to about 2 s, up to 1 GiB), the other by luks2.Format with
// luks2.DefaultKDF (4 passes, 1 GiB, 4 lanes).
func luksPairs(tmp string) []*pair {
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: cryptsetup not found; skipping the LUKS2 cases")
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		fatalf("%v", err)
	}
	kf := filepath.Join(tmp, "luks-pass")
	if err := os.WriteFile(kf, []byte("bench passphrase"), 0o600); err != nil {
		fatalf("%v", err)
	}
	theirs, ours := filepath.Join(tmp, "cryptsetup.luks"), filepath.Join(tmp, "byz.luks")
	for _, v := range []string{theirs, ours} {
		if err := os.WriteFile(v, nil, 0o600); err != nil {
			fatalf("%v", err)
		}
		if err := os.Truncate(v, luks2.DataOffset+4<<20); err != nil {
			fatalf("%v", err)
		}
	}
	if out, err := exec.Command("cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--key-file", kf, theirs).CombinedOutput(); err != nil {
		fatalf("cryptsetup luksFormat: %v\n%s", err, out)
	}
	f, err := os.OpenFile(ours, os.O_RDWR, 0)
	if err != nil {
		fatalf("%v", err)
	}
	_, key, err := luks2.Format(f, luks2.FormatOptions{Passphrase: []byte("bench passphrase")})
	f.Close()
	if err != nil {
		fatalf("luks2.Format: %v", err)
	}
	clear(key)
	var pairs []*pair
	for _, v := range []struct{ name, path string }{{"unlock (cs)", theirs}, {"unlock (byz)", ours}} {
		h, err := func() (*luks2.Header, error) {
			f, err := os.Open(v.path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return luks2.Read(f)
		}()
		if err != nil {
			fatalf("%s: %v", v.path, err)
		}
		k := h.Metadata.Keyslots["0"].KDF
		fmt.Printf("%s: keyslot 0 is %s, %d passes, %d MiB, %d lanes\n", v.name, k.Type, k.Time, k.Memory>>10, k.CPUs)
		path := v.path
		pairs = append(pairs, &pair{name: v.name, target: "report",
			byz: func(out string) [][]string {
				return [][]string{{self, "-unlock", path, kf}, {"truncate", "-s", "0", out}}
			},
			peer: func(out string) [][]string {
				return [][]string{{"cryptsetup", "open", "--test-passphrase", "--key-file", kf, path}, {"truncate", "-s", "0", out}}
			}})
	}
	return pairs
}

// unlock is the child the LUKS2 cases time.
func unlock(vol, keyFile string) error {
	pass, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	f, err := os.Open(vol)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := luks2.Read(f)
	if err != nil {
		return err
	}
	key, _, err := luks2.Unlock(f, h, pass)
	clear(key)
	return err
}

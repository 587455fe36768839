package initramfs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"byzantium/builder/kernel"
	"byzantium/ci/testenv"
	"byzantium/runtime/luks2"
)

// kernelIndex indexes the real linux-image package of a flavour ("amd64",
// "cloud-amd64") in the gitignored package cache, once per test binary
// (the generic kernel's 4,000 modules take about 20 s).
func kernelIndex(t *testing.T, flavour string) *kernel.Index {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	pattern := filepath.Join(filepath.Dir(string(bytes.TrimSpace(out))), ".cache/debs/linux-image-*-"+flavour+"_*.deb")
	all, _ := filepath.Glob(pattern)
	var debs []string
	for _, d := range all {
		// "linux-image-6.1.0-56-amd64_…" is the generic flavour;
		// "…-56-cloud-amd64_…" matches its pattern too.
		pkg, _, _ := strings.Cut(filepath.Base(d), "_")
		if rest := strings.TrimSuffix(pkg, "-"+flavour); rest != "" && rest[len(rest)-1] >= '0' && rest[len(rest)-1] <= '9' {
			debs = append(debs, d)
		}
	}
	if len(debs) == 0 {
		testenv.RequireFile(t, pattern, "make fetch")
		return nil
	}
	deb := debs[len(debs)-1]
	indexes.Lock()
	defer indexes.Unlock()
	if ix := indexes.m[deb]; ix != nil {
		return ix
	}
	f, err := os.Open(deb)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k, err := kernel.ExtractDeb(f, deb, kernel.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	indexes.m[deb] = k.Modules
	return k.Modules
}

var indexes = struct {
	sync.Mutex
	m map[string]*kernel.Index
}{m: map[string]*kernel.Index{}}

func moduleNames(ms []*kernel.Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// TestModulesGenericCRC32C is issue 12's bug on the kernel the default
// image boots: ext4 and jbd2 ask for "crypto-crc32c" when a file system
// mounts, so a module providing it must be in the initramfs and loaded
// before them. It reads only what the package's modules say of themselves
// (their aliases), so it ran against the old module set too, and failed.
func TestModulesGenericCRC32C(t *testing.T) {
	ix := kernelIndex(t, "amd64")
	mods, note, err := Modules(ix)
	if err != nil || note != nil {
		t.Fatalf("Modules on the generic kernel: %v, note %v", err, note)
	}
	providers := map[string]bool{}
	for _, a := range ix.Aliases {
		if a.Pattern == "crypto-crc32c" {
			providers[a.Module] = true
		}
	}
	first := -1
	pos := map[string]int{}
	for i, m := range mods {
		pos[m.Name] = i
		if providers[m.Name] && first < 0 {
			first = i
		}
	}
	if first < 0 {
		t.Fatalf("no crc32c provider (%v) among the %d modules: %v", providers, len(mods), moduleNames(mods))
	}
	for _, m := range []string{"ext4", "jbd2"} {
		if i, ok := pos[m]; !ok || i < first {
			t.Errorf("%s is not loaded after a crc32c provider (at %d, provider at %d)", m, i, first)
		}
	}
}

// TestModulesFollowKernelData checks the whole module set against the
// kernel's data, for both kernels the project builds with: every
// dependency and every softdep of every module carried is met by a module
// loaded before it (after it, for a post-softdep) or by the kernel itself,
// and so is each algorithm dm-crypt asks for to open an encrypted
// save.dat.
func TestModulesFollowKernelData(t *testing.T) {
	for _, flavour := range []string{"amd64", "cloud-amd64"} {
		t.Run(flavour, func(t *testing.T) {
			ix := kernelIndex(t, flavour)
			mods, note, err := Modules(ix)
			if err != nil {
				t.Fatal(err)
			}
			if note != nil && !errors.Is(note, kernel.ErrMissingModules) {
				t.Fatalf("note %v", note)
			}
			t.Logf("%d modules; note: %v", len(mods), note)
			pos := map[string]int{}
			for i, m := range mods {
				if _, dup := pos[m.Name]; dup {
					t.Errorf("%s is carried twice", m.Name)
				}
				pos[m.Name] = i
			}
			// met reports whether name is built in or every module it
			// resolves to is carried, and where the first and last are.
			met := func(name string) (ok bool, first, last int) {
				ms, builtin := ix.Lookup(name)
				first, last = len(mods), -1
				for _, m := range ms {
					i, carried := pos[m.Name]
					if !carried {
						return false, 0, 0
					}
					first, last = min(first, i), max(last, i)
				}
				return builtin || len(ms) > 0, first, last
			}
			for i, m := range mods {
				for _, d := range append(slices.Clone(m.Depends), m.SoftPre...) {
					ok, _, last := met(d)
					if !ok {
						t.Errorf("%s needs %s, which is neither carried nor built in", m.Name, d)
					} else if last > i {
						t.Errorf("%s is loaded before %s, which it needs first", m.Name, d)
					}
				}
				for _, d := range m.SoftPost {
					if ok, first, _ := met(d); !ok || first < len(mods) && first < i {
						t.Errorf("%s's post-softdep %s: met %v, at %d (the module at %d)", m.Name, d, ok, first, i)
					}
				}
			}
			alg, err := kernel.DMCryptAlgorithm(SaveDatCipher)
			if err != nil {
				t.Fatal(err)
			}
			reqs, err := kernel.CryptoRequests(alg)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range append(reqs, "dm-crypt", "loop") {
				if ok, _, _ := met(r); !ok {
					t.Errorf("%s (for %s on a loop device) is neither carried nor built in", r, SaveDatCipher)
				}
			}
		})
	}
}

// TestSaveDatCipher holds SaveDatCipher to what runtime/luks2 loads into
// dm-crypt for a volume it formats: the initramfs carries the algorithms
// for that cipher, and no other.
func TestSaveDatCipher(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "volume"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, key, err := luks2.Format(f, luks2.FormatOptions{Passphrase: []byte("x"),
		KDF: luks2.KDFParams{Type: "pbkdf2", Iterations: 1000}, DigestIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	_, _, params, err := luks2.CryptTable(h, key, "7:0", 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if cipher, _, _ := strings.Cut(string(params), " "); cipher != SaveDatCipher {
		t.Errorf("runtime/luks2 maps volumes with %q; the initramfs carries the algorithms for %q", cipher, SaveDatCipher)
	}
}

package tarball

import (
	"bytes"
	"errors"
	"os/exec"
	"runtime"
	"testing"

	"byzantium/ci/testenv"
)

// TestDecompressorLimits: a few bytes of header must not make a decoder
// reserve gigabytes. Each input here is tiny and declares a huge window.
func TestDecompressorLimits(t *testing.T) {
	zstdBomb := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x98, 0x09, 0x00, 0x00, 0x78} // 512 MiB window
	tests := map[string][]byte{"zstd 512 MiB window": zstdBomb}
	if xz, err := exec.LookPath("xz"); err == nil {
		cmd := exec.Command(xz, "-c", "--lzma2=dict=1536MiB")
		cmd.Stdin = bytes.NewReader([]byte("hello"))
		b, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		tests["xz 1.5 GiB dictionary"] = b
	} else if testenv.InCI() {
		t.Error("xz not found (CI=true, so the xz case may not be left out): run ci/install-deps")
	} else {
		t.Log("xz not found: the xz case is left out")
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r, err := NewReader(bytes.NewReader(in), "bomb")
			if err == nil {
				_, err = r.Next()
				r.Close()
			}
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrBroken) {
				t.Errorf("error %v, want ErrBroken", err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
				t.Errorf("reading %d bytes allocated %d MiB", len(in), got>>20)
			}
		})
	}
	// xz -9 (64 MiB) stays accepted.
	cmd := exec.Command("xz", "-9", "-c")
	cmd.Stdin = bytes.NewReader(nil)
	if b, err := cmd.Output(); err == nil {
		if _, err := NewReader(bytes.NewReader(b), "xz9"); err != nil {
			t.Errorf("xz -9 stream refused: %v", err)
		}
	}
}

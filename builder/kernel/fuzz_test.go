package kernel

import (
	"bytes"
	"testing"
)

// FuzzReadModinfo feeds arbitrary bytes as a .ko: packages are input from
// outside, and the builder must fail cleanly, never panic. Seeds are small
// ELF modules made the way the other tests make them.
func FuzzReadModinfo(f *testing.F) {
	f.Add([]byte("\x7fELF"))
	f.Add(fakeKO("name=virtio_blk", "depends=virtio,virtio_ring", "alias=virtio:d00000002v*"))
	f.Add(fakeKO("name=squashfs", "alias=fs-squashfs"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadModinfo(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, d := range m.Depends {
			if d == "" {
				t.Fatalf("an empty dependency name from %d bytes", len(b))
			}
		}
	})
}

package squashfs

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"byzantium/modules/entry"
)

// FuzzReader opens arbitrary bytes as an image, walks every entry and reads
// every body. Whatever the input, the reader must not panic, must not
// allocate without bound, and must report failures as errors wrapping one
// of the package's sentinels. The corpus in testdata/fuzz/FuzzReader starts
// from the images testdata/mkimages.sh makes and keeps crashers found since.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			readCheckSentinel(t, err)
			return
		}
		_, _ = r.CompressorOptions()
		// Cap what one input may make us read, so a tiny image claiming
		// a huge sparse file does not stall the fuzzer.
		budget := int64(8 << 20)
		es := r.Entries()
		for n := 0; ; n++ {
			h, err := es.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				readCheckSentinel(t, err)
				break
			}
			m, err := io.Copy(io.Discard, io.LimitReader(es, budget))
			budget -= m
			if err != nil {
				readCheckSentinel(t, err)
			}
			if n < 4 && h.Type != entry.TypeHardlink {
				// Lookups take another path through the tables.
				if _, err := r.Stat(h.Path); err != nil {
					readCheckSentinel(t, err)
				}
			}
			if budget <= 0 {
				break
			}
		}
	})
}

func readCheckSentinel(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotSquashfs) && !errors.Is(err, ErrUnsupportedCompression) {
		t.Fatalf("error wraps no sentinel: %v", err)
	}
}

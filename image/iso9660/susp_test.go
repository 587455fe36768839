package iso9660

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// TestContinuationChain lays out more system use data than a sector holds
// and walks the CE chain back, as a reader would. Oracles cannot cover this:
// libisofs refuses symlink targets over 1024 bytes, the only entries that
// get this long.
func TestContinuationChain(t *testing.T) {
	for _, total := range []int{10, 200, 2500, 9000} {
		t.Run(fmt.Sprint(total), func(t *testing.T) {
			var es [][]byte
			for i := 0; len(join(es, nil)) < total; i++ {
				e := suHeader("XX", 5+i%250)
				e[4] = byte(i)
				es = append(es, e)
			}
			ce := &ceWriter{lba: 100}
			ce.place(make([]byte, 1500)) // areas must not cross sectors
			su := fitSU(es, 150, ce)
			if len(su) > 150 {
				t.Fatalf("record part is %d bytes, room was 150", len(su))
			}
			var got [][]byte
			for area, hops := su, 0; area != nil; hops++ {
				if hops > 100 {
					t.Fatal("CE chain does not end")
				}
				next := []byte(nil)
				for len(area) >= 4 {
					e := area[:area[2]]
					area = area[len(e):]
					if string(e[:2]) != "CE" {
						got = append(got, e)
						continue
					}
					lba, off, n := binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint32(e[12:]), binary.LittleEndian.Uint32(e[20:])
					if off+n > sectorSize {
						t.Fatalf("continuation area at %d+%d crosses a sector", off, n)
					}
					at := int(lba-100)*sectorSize + int(off)
					next = ce.buf[at : at+int(n)]
				}
				area = next
			}
			if !bytes.Equal(join(got, nil), join(es, nil)) {
				t.Errorf("read back %d entries, wrote %d", len(got), len(es))
			}
		})
	}
}

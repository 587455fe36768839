package gpt

import (
	"bytes"
	"testing"
)

// memDisk is an io.ReaderAt and io.WriterAt over a byte slice.
type memDisk struct{ b []byte }

func (m *memDisk) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.b).ReadAt(p, off)
}
func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	return copy(m.b[off:], p), nil
}

// FuzzRead feeds Read arbitrary disks (cloning reads the tables of sticks
// it did not write): no panic, and a table Read accepts must write back
// and read again to the same partitions.
func FuzzRead(f *testing.F) {
	const size = 4 << 20
	good := &memDisk{b: make([]byte, size)}
	tbl := Table{DiskGUID: DeriveGUID([]byte("fuzz"), "disk"), Partitions: []Partition{{
		Type: TypeESP, GUID: DeriveGUID([]byte("fuzz"), "p1"), Name: "BYZANTIUM",
		FirstLBA: AlignmentLBA, LastLBA: LastUsableLBA(size), Attributes: AttrLegacyBIOSBootable}}}
	if err := tbl.Write(good, size); err != nil {
		f.Fatal(err)
	}
	// The interesting bytes are the first and last 34 sectors.
	f.Add(good.b[:34*SectorSize], good.b[size-33*SectorSize:])
	f.Add(make([]byte, 34*SectorSize), make([]byte, 33*SectorSize))
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		if len(head) > 34*SectorSize || len(tail) > 33*SectorSize {
			return
		}
		d := &memDisk{b: make([]byte, size)}
		copy(d.b, head)
		copy(d.b[size-33*SectorSize:], tail)
		got, err := Read(d, size)
		if err != nil {
			return
		}
		out := &memDisk{b: make([]byte, size)}
		if err := got.Write(out, size); err != nil {
			return // Read may accept tables Write would not make (e.g. unaligned)
		}
		again, err := Read(out, size)
		if err != nil {
			t.Fatalf("a table written from an accepted one does not read back: %v", err)
		}
		if len(again.Partitions) != len(got.Partitions) || again.DiskGUID != got.DiskGUID {
			t.Fatalf("round trip changed the table: %+v vs %+v", got, again)
		}
	})
}

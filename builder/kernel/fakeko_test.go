package kernel

import (
	"bytes"
	"encoding/binary"
)

// fakeKO returns a minimal ELF64 relocatable object whose only real section
// is .modinfo with the given "key=value" fields: enough for ReadModinfo,
// and small enough to build in a test instead of checking in binaries.
func fakeKO(fields ...string) []byte {
	var modinfo []byte
	for _, f := range fields {
		modinfo = append(modinfo, f...)
		modinfo = append(modinfo, 0)
	}
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modinfoOff := uint64(ehsize)
	shstrOff := modinfoOff + uint64(len(modinfo))
	shoff := (shstrOff + uint64(len(shstrtab)) + 7) &^ 7

	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b.Write(make([]byte, 8))
	for _, v := range []any{uint16(1), uint16(62), uint32(1), uint64(0), uint64(0), shoff,
		uint32(0), uint16(ehsize), uint16(0), uint16(0), uint16(shentsize), uint16(3), uint16(2)} {
		binary.Write(&b, le, v)
	}
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, int(shoff)-b.Len()))
	section := func(name, typ uint32, off, size uint64) {
		for _, v := range []any{name, typ, uint64(0), uint64(0), off, size, uint32(0), uint32(0), uint64(1), uint64(0)} {
			binary.Write(&b, le, v)
		}
	}
	section(0, 0, 0, 0)                             // SHN_UNDEF
	section(1, 1, modinfoOff, uint64(len(modinfo))) // .modinfo, PROGBITS
	section(10, 3, shstrOff, uint64(len(shstrtab))) // .shstrtab, STRTAB
	return b.Bytes()
}

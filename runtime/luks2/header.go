// Package luks2 reads (and, in time, writes) LUKS2 volume headers: the
// format cryptsetup uses, so a save.dat encrypted on a node opens with
// cryptsetup anywhere, and one made by cryptsetup opens on a node.
//
// A LUKS2 header is two copies of the same metadata, each a 4 KiB binary
// header followed by a JSON area, checksummed together. The primary copy
// sits at offset 0, the secondary right after it. Read takes the valid
// copy with the higher sequence number, so a header torn by a crash while
// one copy was being written still opens.
//
// This file is the reading half; the key derivation, the keyslot
// decryption and the device-mapper setup come with issue 4's later slices.
package luks2

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Binary header layout (all integers big-endian).
const (
	binHeaderSize = 4096
	offVersion    = 6
	offHdrSize    = 8
	offSeqID      = 16
	offLabel      = 24
	offCsumAlg    = 72
	offSalt       = 104
	offUUID       = 168
	offSubsystem  = 208
	offHdrOffset  = 256
	offCsum       = 448
	csumLen       = 64
)

var (
	magicPrimary   = []byte("LUKS\xba\xbe")
	magicSecondary = []byte("SKUL\xba\xbe")
)

// secondaryOffsets are where the secondary header may start: right after
// the primary, whose size (binary header + JSON area) is one of these.
var secondaryOffsets = []int64{0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000}

// maxHeaderSize bounds what Read allocates for one copy.
const maxHeaderSize = 4 << 20

// errNoMagic is a copy that is not there at all.
var errNoMagic = errors.New("no magic")

// ErrNotLUKS2 reports a device that holds no valid LUKS2 header.
var ErrNotLUKS2 = errors.New("luks2: no valid LUKS2 header")

// Header is a volume's metadata, from the copy Read chose.
type Header struct {
	Version   int
	HdrSize   int64  // bytes of one copy: binary header + JSON area
	SeqID     uint64 // bumped on every metadata update
	Label     string
	Subsystem string
	UUID      string
	CsumAlg   string
	Salt      []byte
	Metadata  Metadata
	// Copy says which copy this is: "primary" or "secondary".
	Copy string
	// raw is the JSON area as read, so an update keeps the fields this
	// package does not model (tokens, requirements, flags).
	raw []byte
}

// Metadata is the JSON area. Numbers that may exceed 2^53 are strings in
// the format (offsets, sizes); Uint64 parses them.
type Metadata struct {
	Keyslots map[string]Keyslot        `json:"keyslots"`
	Tokens   map[string]map[string]any `json:"tokens"`
	Segments map[string]Segment        `json:"segments"`
	Digests  map[string]Digest         `json:"digests"`
	Config   Config                    `json:"config"`
}

// Keyslot is one passphrase's encrypted copy of the volume key.
type Keyslot struct {
	Type     string `json:"type"` // "luks2"
	KeySize  int    `json:"key_size"`
	Priority *int   `json:"priority,omitempty"`
	Area     Area   `json:"area"`
	KDF      KDF    `json:"kdf"`
	AF       AF     `json:"af"`
}

// Area is where a keyslot's material lies and how it is encrypted.
type Area struct {
	Type       string `json:"type"` // "raw"
	Offset     string `json:"offset"`
	Size       string `json:"size"`
	Encryption string `json:"encryption"`
	KeySize    int    `json:"key_size"`
}

// KDF turns a passphrase into the key of a keyslot's area.
type KDF struct {
	Type       string `json:"type"` // "argon2id", "argon2i" or "pbkdf2"
	Salt       []byte `json:"salt"`
	Time       int    `json:"time,omitempty"`
	Memory     int    `json:"memory,omitempty"` // KiB
	CPUs       int    `json:"cpus,omitempty"`
	Hash       string `json:"hash,omitempty"`
	Iterations int    `json:"iterations,omitempty"`
}

// AF is the anti-forensic splitter applied to the key in the area.
type AF struct {
	Type    string `json:"type"` // "luks1"
	Stripes int    `json:"stripes"`
	Hash    string `json:"hash"`
}

// Segment is an encrypted data range.
type Segment struct {
	Type       string   `json:"type"` // "crypt"
	Offset     string   `json:"offset"`
	Size       string   `json:"size"` // bytes, or "dynamic": to the end of the device
	IVTweak    string   `json:"iv_tweak"`
	Encryption string   `json:"encryption"`
	SectorSize int      `json:"sector_size"`
	Flags      []string `json:"flags,omitempty"`
}

// Digest verifies a candidate volume key.
type Digest struct {
	Type       string   `json:"type"` // "pbkdf2"
	Keyslots   []string `json:"keyslots"`
	Segments   []string `json:"segments"`
	Hash       string   `json:"hash"`
	Iterations int      `json:"iterations"`
	Salt       []byte   `json:"salt"`
	Digest     []byte   `json:"digest"`
}

// Config holds the sizes of the areas.
type Config struct {
	JSONSize     string   `json:"json_size"`
	KeyslotsSize string   `json:"keyslots_size"`
	Flags        []string `json:"flags,omitempty"`
	Requirements any      `json:"requirements,omitempty"`
}

// Uint64 parses one of the format's decimal strings.
func Uint64(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("luks2: %q is not a decimal size: %w", s, err)
	}
	return v, nil
}

// Read reads the header of the LUKS2 volume in r. Both copies are checked;
// the valid one with the higher sequence number wins. An error wraps
// ErrNotLUKS2 and says what was wrong with each copy.
func Read(r io.ReaderAt) (*Header, error) {
	primary, perr := readCopy(r, 0, magicPrimary)
	if perr == nil {
		primary.Copy = "primary"
	}
	// The secondary follows the primary; if the primary is unreadable,
	// try each place it can be.
	offsets := secondaryOffsets
	if perr == nil {
		offsets = []int64{primary.HdrSize}
	}
	var secondary *Header
	serr := errors.New("not found at any of its offsets")
	for _, off := range offsets {
		h, err := readCopy(r, off, magicSecondary)
		if err == nil {
			h.Copy = "secondary"
			secondary, serr = h, nil
			break
		}
		// Report a copy that is there but broken, not every place a
		// copy is not.
		if perr == nil || !errors.Is(err, errNoMagic) {
			serr = err
		}
	}
	switch {
	case perr != nil && serr != nil:
		return nil, fmt.Errorf("%w: primary: %v; secondary: %v", ErrNotLUKS2, perr, serr)
	case perr != nil:
		return secondary, nil
	case serr != nil || secondary.SeqID <= primary.SeqID:
		return primary, nil
	default:
		return secondary, nil
	}
}

// readCopy reads and verifies the copy at off.
func readCopy(r io.ReaderAt, off int64, magic []byte) (*Header, error) {
	bin := make([]byte, binHeaderSize)
	if _, err := r.ReadAt(bin, off); err != nil {
		return nil, fmt.Errorf("reading %d bytes at %d: %w", binHeaderSize, off, err)
	}
	if !bytes.Equal(bin[:len(magic)], magic) {
		return nil, fmt.Errorf("%w %q at %d", errNoMagic, magic[:4], off)
	}
	h := &Header{
		Version:   int(binary.BigEndian.Uint16(bin[offVersion:])),
		SeqID:     binary.BigEndian.Uint64(bin[offSeqID:]),
		Label:     cString(bin[offLabel:offCsumAlg]),
		CsumAlg:   cString(bin[offCsumAlg:offSalt]),
		Salt:      bytes.Clone(bin[offSalt:offUUID]),
		UUID:      cString(bin[offUUID:offSubsystem]),
		Subsystem: cString(bin[offSubsystem:offHdrOffset]),
	}
	if h.Version != 2 {
		return nil, fmt.Errorf("version %d at %d, want 2", h.Version, off)
	}
	size := binary.BigEndian.Uint64(bin[offHdrSize:])
	if size <= binHeaderSize || size > maxHeaderSize || !validHeaderSize(int64(size)) {
		return nil, fmt.Errorf("header size %d at %d is not one LUKS2 allows", size, off)
	}
	h.HdrSize = int64(size)
	if got := binary.BigEndian.Uint64(bin[offHdrOffset:]); got != uint64(off) {
		return nil, fmt.Errorf("the copy at %d says it is at %d", off, got)
	}
	if h.CsumAlg != "sha256" {
		return nil, fmt.Errorf("checksum %q at %d: only sha256 is supported", h.CsumAlg, off)
	}
	area := make([]byte, size)
	copy(area, bin)
	if _, err := r.ReadAt(area[binHeaderSize:], off+binHeaderSize); err != nil {
		return nil, fmt.Errorf("reading the JSON area at %d: %w", off+binHeaderSize, err)
	}
	want := bytes.Clone(area[offCsum : offCsum+sha256.Size])
	clear(area[offCsum : offCsum+csumLen])
	if got := sha256.Sum256(area); !bytes.Equal(got[:], want) {
		return nil, fmt.Errorf("checksum mismatch in the copy at %d", off)
	}
	js := area[binHeaderSize:]
	if i := bytes.IndexByte(js, 0); i >= 0 {
		js = js[:i]
	}
	h.raw = bytes.Clone(js)
	dec := json.NewDecoder(bytes.NewReader(js))
	if err := dec.Decode(&h.Metadata); err != nil {
		return nil, fmt.Errorf("JSON area at %d: %w", off+binHeaderSize, err)
	}
	if err := h.Metadata.check(size); err != nil {
		return nil, fmt.Errorf("JSON area at %d: %w", off+binHeaderSize, err)
	}
	return h, nil
}

// check validates what the later steps rely on.
func (m *Metadata) check(hdrSize uint64) error {
	js, err := Uint64(m.Config.JSONSize)
	if err != nil {
		return fmt.Errorf("config.json_size: %w", err)
	}
	if js != hdrSize-binHeaderSize {
		return fmt.Errorf("config.json_size %d does not match the header size %d", js, hdrSize)
	}
	if len(m.Segments) == 0 {
		return errors.New("no segments")
	}
	for id, s := range m.Segments {
		if _, err := Uint64(s.Offset); err != nil {
			return fmt.Errorf("segment %s: offset: %w", id, err)
		}
		if s.Size != "dynamic" {
			if _, err := Uint64(s.Size); err != nil {
				return fmt.Errorf("segment %s: size: %w", id, err)
			}
		}
	}
	for id, k := range m.Keyslots {
		for _, f := range []string{k.Area.Offset, k.Area.Size} {
			if _, err := Uint64(f); err != nil {
				return fmt.Errorf("keyslot %s: area: %w", id, err)
			}
		}
	}
	for id, d := range m.Digests {
		for _, k := range d.Keyslots {
			if _, ok := m.Keyslots[k]; !ok {
				return fmt.Errorf("digest %s names keyslot %s, which does not exist", id, k)
			}
		}
	}
	return nil
}

func validHeaderSize(n int64) bool {
	for _, s := range secondaryOffsets {
		if n == s {
			return true
		}
	}
	return false
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Package luks2 is LUKS2 in pure Go, the format cryptsetup uses, so a
// save.dat encrypted on a node opens with cryptsetup anywhere and one made
// by cryptsetup opens on a node: it reads and validates headers (Read),
// formats a volume (Format), derives keys from passphrases with argon2id
// or PBKDF2 and unlocks a keyslot (Unlock), adds and removes keyslots
// (AddKey, RemoveKey), and maps the volume through device-mapper (Open,
// Close). A header's KDF costs come from the media, so they are bounded
// (Limits) before any derivation runs, in byz and in byz-init alike;
// LocalKDFMemory caps what a new keyslot asks for on this machine.
//
// A LUKS2 header is two copies of the same metadata, each a 4 KiB binary
// header followed by a JSON area, checksummed together. The primary copy
// sits at offset 0, the secondary right after it. Read takes the valid
// copy with the higher sequence number, so a header torn by a crash while
// one copy was being written still opens. "Valid" means what cryptsetup
// means (validate.go): a header cryptsetup refuses is neither used nor
// written here.
package luks2

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
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

// minHeaderSize and maxHeaderSize bound one copy's size (binary header
// and JSON area); Read allocates at most that for a copy.
const (
	minHeaderSize = 0x4000
	maxHeaderSize = 4 << 20
)

var (
	// ErrNotLUKS2 reports a device that holds no valid LUKS2 header.
	ErrNotLUKS2 = errors.New("luks2: no valid LUKS2 header")
	// ErrNoMagic reports a device where neither header copy is there at
	// all (a plain file system, say): it comes with ErrNotLUKS2.
	ErrNoMagic = errors.New("luks2: no LUKS2 header magic")
)

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
	// tree is the JSON area as validated (and repaired), so an update
	// keeps the fields this package does not model (tokens, flags).
	tree *jval
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

// KDF turns a passphrase into the key of a keyslot's area. The costs are
// as the header gives them (int64: a hostile header's 2^32 passes stay
// 2^32, to be refused, rather than wrap).
type KDF struct {
	Type       string `json:"type"` // "argon2id", "argon2i" or "pbkdf2"
	Salt       []byte `json:"salt"`
	Time       int64  `json:"time,omitempty"`
	Memory     int64  `json:"memory,omitempty"` // KiB
	CPUs       int64  `json:"cpus,omitempty"`
	Hash       string `json:"hash,omitempty"`
	Iterations int64  `json:"iterations,omitempty"`
}

// AF is the anti-forensic splitter applied to the key in the area.
type AF struct {
	Type    string `json:"type"` // "luks1"
	Stripes int64  `json:"stripes"`
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
	Iterations int64    `json:"iterations"`
	Salt       []byte   `json:"salt"`
	Digest     []byte   `json:"digest"`
}

// Config holds the sizes of the areas.
type Config struct {
	JSONSize     string   `json:"json_size"`
	KeyslotsSize string   `json:"keyslots_size"`
	Flags        []string `json:"flags,omitempty"`
	// Requirements are config.requirements.mandatory: features a program
	// must have to write or activate the volume (a re-encryption under
	// way, OPAL). This package has none of them.
	Requirements []string `json:"-"`
}

// Uint64 parses one of the format's decimal strings.
func Uint64(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("luks2: %q is not a decimal size: %w", s, err)
	}
	return v, nil
}

// copyState is how far a header copy got, as cryptsetup grades it: a
// copy whose binary header and checksum are fine but whose metadata is
// not is "obsolete", and still tells where the secondary copy lies.
type copyState int

const (
	copyFailed copyState = iota
	copyObsolete
	copyOK
)

type readResult struct {
	h       *Header // the copy, when copyOK
	hdrSize int64   // from its binary header, when not copyFailed
	state   copyState
	err     error
	noMagic bool
}

// Read reads the header of the LUKS2 volume in r. Both copies are checked;
// the valid one with the higher sequence number wins. The secondary is
// looked for where the primary says it is, or, when the primary's binary
// header is unreadable, at each place it may be. The device must be large
// enough for the headers and keyslots area the metadata describes, and
// when a copy is damaged, hold no other format's signature. An
// error wraps ErrNotLUKS2 (and ErrNoMagic when neither copy is there)
// and says what was wrong with each copy.
func Read(r io.ReaderAt) (*Header, error) {
	p := readCopy(r, 0, magicPrimary)
	var s readResult
	if p.state != copyFailed {
		s = readCopy(r, p.hdrSize, magicSecondary)
	} else {
		s = readResult{err: errors.New("not found at any of its offsets"), noMagic: true}
		for _, off := range metadataSizes {
			c := readCopy(r, int64(off), magicSecondary)
			if c.state != copyFailed {
				s = c
				break
			}
			if !c.noMagic {
				s = c
			}
		}
	}
	var h *Header
	switch {
	case p.state == copyOK && (s.state != copyOK || s.h.SeqID <= p.h.SeqID):
		h = p.h
		h.Copy = "primary"
	case s.state == copyOK:
		h = s.h
		h.Copy = "secondary"
	default:
		err := fmt.Errorf("%w: primary: %w; secondary: %w", ErrNotLUKS2, p.err, s.err)
		if p.noMagic && s.noMagic {
			err = fmt.Errorf("%w: %w", err, ErrNoMagic)
		}
		return nil, err
	}
	if p.state != copyOK || s.state != copyOK {
		if sig := foreignSignature(r); sig != "" {
			return nil, fmt.Errorf("%w: one header copy is damaged (primary: %v; secondary: %v) and the device also holds a %s signature: "+
				"ambiguous, as cryptsetup says; decide with cryptsetup repair", ErrNotLUKS2, p.err, s.err, sig)
		}
	}
	jsonSize, keyslotsSize := configSizes(h.tree)
	end := 2*(jsonSize+binHeaderSize) + keyslotsSize
	var last [1]byte
	if _, err := r.ReadAt(last[:], int64(end-1)); err != nil {
		return nil, fmt.Errorf("%w: the device ends before its header copies and keyslots area (%d bytes): %v", ErrNotLUKS2, end, err)
	}
	return h, nil
}

// readCopy reads and verifies the copy at off.
func readCopy(r io.ReaderAt, off int64, magic []byte) readResult {
	fail := func(format string, a ...any) readResult {
		return readResult{err: fmt.Errorf(format, a...)}
	}
	bin := make([]byte, binHeaderSize)
	if _, err := r.ReadAt(bin, off); err != nil {
		return readResult{err: fmt.Errorf("reading %d bytes at %d: %w", binHeaderSize, off, err), noMagic: true}
	}
	if !bytes.Equal(bin[:len(magic)], magic) {
		return readResult{err: fmt.Errorf("no magic %q at %d", magic[:4], off), noMagic: true}
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
		return fail("version %d at %d, want 2", h.Version, off)
	}
	if got := binary.BigEndian.Uint64(bin[offHdrOffset:]); got != uint64(off) {
		return fail("the copy at %d says it is at %d", off, got)
	}
	size := binary.BigEndian.Uint64(bin[offHdrSize:])
	if size < minHeaderSize || size > maxHeaderSize {
		return fail("header size %d at %d: LUKS2 allows 16 KiB to 4 MiB", size, off)
	}
	if magic[0] == magicSecondary[0] && size != uint64(off) {
		return fail("the secondary copy at %d gives a header size of %d", off, size)
	}
	h.HdrSize = int64(size)
	newHash, err := hashByName(h.CsumAlg)
	if err != nil || newHash().Size() > csumLen {
		return fail("checksum %q at %d is not supported", h.CsumAlg, off)
	}
	area := make([]byte, size)
	copy(area, bin)
	if _, err := r.ReadAt(area[binHeaderSize:], off+binHeaderSize); err != nil {
		return fail("reading the JSON area at %d: %v", off+binHeaderSize, err)
	}
	if !bytes.Equal(checksum(area, newHash), area[offCsum:offCsum+newHash().Size()]) {
		return fail("checksum mismatch in the copy at %d", off)
	}
	res := readResult{hdrSize: h.HdrSize, state: copyObsolete}
	root, err := checkArea(area[binHeaderSize:])
	if err != nil {
		res.err = fmt.Errorf("the JSON area at %d: %w", off+binHeaderSize, err)
		return res
	}
	h.tree = root
	h.Metadata = decodeMetadata(root)
	res.h, res.state = h, copyOK
	return res
}

// checksum is the hash of a header copy with its checksum field zeroed.
func checksum(copyBytes []byte, newHash func() hash.Hash) []byte {
	hh := newHash()
	hh.Write(copyBytes[:offCsum])
	hh.Write(make([]byte, csumLen))
	hh.Write(copyBytes[offCsum+csumLen:])
	return hh.Sum(nil)
}

// decodeMetadata gives the typed view of validated metadata. Values of
// an unexpected type read as zero; numbers as json-c reads them.
func decodeMetadata(root *jval) Metadata {
	md := Metadata{Keyslots: map[string]Keyslot{}, Tokens: map[string]map[string]any{},
		Segments: map[string]Segment{}, Digests: map[string]Digest{}}
	for _, m := range root.get("keyslots").obj {
		v := m.val
		area, kdf, af := v.get("area"), v.get("kdf"), v.get("af")
		ks := Keyslot{
			Type: v.get("type").str(), KeySize: int(intOf(v.get("key_size"))),
			Area: Area{Type: area.get("type").str(), Offset: area.get("offset").str(), Size: area.get("size").str(),
				Encryption: area.get("encryption").str(), KeySize: int(intOf(area.get("key_size")))},
			KDF: KDF{Type: kdf.get("type").str(), Salt: base64Of(kdf.get("salt")), Time: intOf(kdf.get("time")),
				Memory: intOf(kdf.get("memory")), CPUs: intOf(kdf.get("cpus")), Hash: kdf.get("hash").str(),
				Iterations: intOf(kdf.get("iterations"))},
			AF: AF{Type: af.get("type").str(), Stripes: intOf(af.get("stripes")), Hash: af.get("hash").str()},
		}
		if p := v.get("priority"); p != nil {
			n := int(intOf(p))
			ks.Priority = &n
		}
		md.Keyslots[m.key] = ks
	}
	for _, m := range root.get("tokens").obj {
		md.Tokens[m.key] = map[string]any{"type": m.val.get("type").str()}
	}
	for _, m := range root.get("segments").obj {
		v := m.val
		md.Segments[m.key] = Segment{Type: v.get("type").str(), Offset: v.get("offset").str(), Size: v.get("size").str(),
			IVTweak: v.get("iv_tweak").str(), Encryption: v.get("encryption").str(),
			SectorSize: int(intOf(v.get("sector_size"))), Flags: stringList(v.get("flags"))}
	}
	for _, m := range root.get("digests").obj {
		v := m.val
		md.Digests[m.key] = Digest{Type: v.get("type").str(), Keyslots: stringList(v.get("keyslots")),
			Segments: stringList(v.get("segments")), Hash: v.get("hash").str(), Iterations: intOf(v.get("iterations")),
			Salt: base64Of(v.get("salt")), Digest: base64Of(v.get("digest"))}
	}
	c := root.get("config")
	md.Config = Config{JSONSize: c.get("json_size").str(), KeyslotsSize: c.get("keyslots_size").str(),
		Flags: stringList(c.get("flags")), Requirements: mandatoryRequirements(root)}
	return md
}

// intOf is a number member's value (0 when it is not an integer).
func intOf(v *jval) int64 {
	if v.is(jInt) {
		return v.i
	}
	return 0
}

func base64Of(v *jval) []byte {
	b, err := base64.StdEncoding.DecodeString(v.str())
	if err != nil {
		return nil
	}
	return b
}

func stringList(v *jval) []string {
	var out []string
	for _, e := range v.arrOrNil() {
		out = append(out, e.str())
	}
	return out
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// hashByName is one of the hashes LUKS2 headers name.
func hashByName(name string) (func() hash.Hash, error) {
	switch name {
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	case "sha1":
		return sha1.New, nil
	}
	return nil, fmt.Errorf("hash %q is not supported", name)
}

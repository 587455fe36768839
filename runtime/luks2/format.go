package luks2

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
)

// The layout Format writes, cryptsetup's default for LUKS2: two 16 KiB
// header copies, then the keyslots area, then the data at 16 MiB.
const (
	hdrSize       = 0x4000
	keyslotsStart = 2 * hdrSize
	DataOffset    = 16 << 20 // where the encrypted data starts
	keyslotsSize  = DataOffset - keyslotsStart
	volumeKeySize = 64 // aes-xts-plain64 with two AES-256 keys
)

// KDFParams are the costs of the passphrase's key derivation.
type KDFParams struct {
	// Type is "argon2id" (the default) or "pbkdf2".
	Type string
	// Time is argon2's passes; Memory its KiB; Threads its lanes.
	Time, Memory, Threads int
	// Iterations is pbkdf2-sha256's count.
	Iterations int
}

// DefaultKDF is argon2id at cryptsetup's memory and thread defaults (1 GiB,
// 4 lanes) with 4 passes. cryptsetup instead benchmarks the machine to take
// 2 s; fixed costs keep a volume made on a fast machine openable in the
// same time everywhere.
var DefaultKDF = KDFParams{Type: "argon2id", Time: 4, Memory: 1 << 20, Threads: 4}

// LocalKDFMemory is the argon2id memory (KiB) of a new keyslot that this
// machine makes and must unlock itself (a node making its own save.dat or
// a clone it boots): asked, or DefaultKDF's when asked is not above 0,
// capped at half the RAM as cryptsetup caps it.
func LocalKDFMemory(asked int) int {
	m := asked
	if m <= 0 {
		m = DefaultKDF.Memory
	}
	if total := physicalRAMKiB(); total > 0 && int64(m) > total/2 {
		m = int(total / 2)
	}
	return m
}

// Bounds on the costs of a new keyslot (KDFParams.Check).
const (
	MinArgon2Memory     = 32 // KiB, cryptsetup's floor
	MaxArgon2Threads    = 16
	MinPBKDF2Iterations = 1000
)

// Check validates the costs of a new keyslot: the one check every
// command that takes KDF costs (byz persist create, byz clone, byzd's
// API through savedat) relies on, made before anything is written. The
// zero value means DefaultKDF. Costs a node would refuse to unlock
// (Limits) are refused here too, so no volume is made that its node
// cannot open. An error wraps ErrBadFormatOption and speaks in sizes.
func (p KDFParams) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadFormatOption, fmt.Sprintf(format, a...))
	}
	switch p.Type {
	case "":
		return nil
	case "argon2id":
		switch {
		case p.Time < 1:
			return bad("argon2id with %d passes: at least 1", p.Time)
		case p.Memory < MinArgon2Memory || p.Memory > MaxArgon2Memory:
			return bad("argon2id memory of %s: from %s to %s", kibSize(int64(p.Memory)), kib(MinArgon2Memory), kib(MaxArgon2Memory))
		case p.Threads < 1 || p.Threads > MaxArgon2Threads:
			return bad("argon2id with %d threads: 1 to %d", p.Threads, MaxArgon2Threads)
		case int64(p.Time) > MaxArgon2Work/int64(p.Memory):
			return bad("argon2id %d passes over %s is more work than a node unlocks (passes × memory at most %d GiB, so %d passes at most over %s)",
				p.Time, kib(int64(p.Memory)), MaxArgon2Work>>20, MaxArgon2Work/int64(p.Memory), kib(int64(p.Memory)))
		}
		return nil
	case "pbkdf2":
		if p.Iterations < MinPBKDF2Iterations || p.Iterations > MaxPBKDF2Iterations {
			return bad("pbkdf2 with %d iterations: from %d to %d", p.Iterations, MinPBKDF2Iterations, MaxPBKDF2Iterations)
		}
		return nil
	}
	return bad("KDF %q: want argon2id or pbkdf2", p.Type)
}

// kibSize writes a size given in KiB, "0 bytes" for 0.
func kibSize(n int64) string {
	if n == 0 {
		return "0 bytes"
	}
	return kib(n)
}

// FormatOptions configures Format.
type FormatOptions struct {
	// Passphrase goes into keyslot 0. Required.
	Passphrase []byte
	// KDF is the keyslot's key derivation; the zero value is DefaultKDF.
	KDF KDFParams
	// Label is the volume label (at most 47 bytes).
	Label string
	// UUID is the volume UUID; "" makes a random one.
	UUID string
	// SectorSize is the data's encryption sector size, 512 or 4096 (the
	// default).
	SectorSize int
	// DigestIterations is the volume key digest's pbkdf2-sha256 count;
	// 0 means 100,000.
	DigestIterations int
	// Rand supplies the keys and salts; nil means crypto/rand.
	Rand io.Reader
}

// ErrBadFormatOption reports FormatOptions that cannot make a volume.
var ErrBadFormatOption = errors.New("luks2: bad format option")

// Format writes a LUKS2 header for a new volume to w: both header copies
// and keyslot 0, holding a new random volume key under opts.Passphrase.
// It returns the header and the volume key, which the caller wipes when
// done. The encrypted data starts at DataOffset; Format does not touch it.
func Format(w io.WriterAt, opts FormatOptions) (*Header, []byte, error) {
	if len(opts.Passphrase) == 0 {
		return nil, nil, fmt.Errorf("%w: an empty passphrase", ErrBadFormatOption)
	}
	kdf := opts.KDF
	if err := kdf.Check(); err != nil {
		return nil, nil, err
	}
	if len(opts.Label) > offCsumAlg-offLabel-1 {
		return nil, nil, fmt.Errorf("%w: label %q is longer than 47 bytes", ErrBadFormatOption, opts.Label)
	}
	sector := opts.SectorSize
	if sector == 0 {
		sector = 4096
	}
	if sector != 512 && sector != 4096 {
		return nil, nil, fmt.Errorf("%w: sector size %d: want 512 or 4096", ErrBadFormatOption, sector)
	}
	iters := opts.DigestIterations
	if iters == 0 {
		iters = 100000
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	random := func(n int) ([]byte, error) { return randomBytes(rnd, n) }
	uuid := opts.UUID
	if uuid == "" {
		u, err := random(16)
		if err != nil {
			return nil, nil, err
		}
		u[6] = u[6]&0x0f | 0x40 // version 4
		u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
		uuid = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	if len(uuid) != 36 {
		return nil, nil, fmt.Errorf("%w: UUID %q is not 36 characters", ErrBadFormatOption, uuid)
	}

	key, err := random(volumeKeySize)
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			clear(key)
		}
	}()
	ks, area, err := newKeyslot(key, opts.Passphrase, kdf, keyslotsStart, rnd)
	if err != nil {
		return nil, nil, err
	}

	digestSalt, err := random(32)
	if err != nil {
		return nil, nil, err
	}
	digest, err := pbkdf2.Key(sha256.New, string(key), digestSalt, iters, 32)
	if err != nil {
		return nil, nil, err
	}
	md := Metadata{
		Keyslots: map[string]Keyslot{"0": ks},
		Tokens:   map[string]map[string]any{},
		Segments: map[string]Segment{"0": {Type: "crypt", Offset: strconv.Itoa(DataOffset), Size: "dynamic",
			IVTweak: "0", Encryption: "aes-xts-plain64", SectorSize: sector}},
		Digests: map[string]Digest{"0": {Type: "pbkdf2", Keyslots: []string{"0"}, Segments: []string{"0"},
			Hash: "sha256", Iterations: int64(iters), Salt: digestSalt, Digest: digest}},
		Config: Config{JSONSize: strconv.Itoa(hdrSize - binHeaderSize), KeyslotsSize: strconv.Itoa(keyslotsSize)},
	}
	tree, err := toTree(md)
	if err != nil {
		return nil, nil, err
	}
	js := tree.compact()
	jsonArea := make([]byte, hdrSize-binHeaderSize)
	if len(js) >= len(jsonArea) {
		return nil, nil, fmt.Errorf("luks2: metadata of %d bytes does not fit the JSON area", len(js))
	}
	copy(jsonArea, js)
	// What cryptsetup would refuse is never written, not even by Format.
	if tree, err = checkArea(jsonArea); err != nil {
		return nil, nil, fmt.Errorf("luks2: Format made metadata cryptsetup would refuse: %w", err)
	}
	salt, err := random(offUUID - offSalt)
	if err != nil {
		return nil, nil, err
	}

	// The keyslot first, the headers last: until they are written, the
	// device is not a LUKS volume (nor half of one).
	if _, err := w.WriteAt(area, keyslotsStart); err != nil {
		return nil, nil, fmt.Errorf("luks2: writing the keyslot: %w", err)
	}
	h := &Header{Version: 2, HdrSize: hdrSize, SeqID: 1, Label: opts.Label, UUID: uuid, CsumAlg: "sha256",
		Salt: salt, Metadata: decodeMetadata(tree), Copy: "primary", tree: tree}
	for i, magic := range [][]byte{magicPrimary, magicSecondary} {
		b, err := h.encode(magic, int64(i*hdrSize), js)
		if err != nil {
			return nil, nil, err
		}
		if _, err := w.WriteAt(b, int64(i*hdrSize)); err != nil {
			return nil, nil, fmt.Errorf("luks2: writing the header: %w", err)
		}
	}
	ok = true
	return h, key, nil
}

// encode lays out one header copy at off: the binary header, the JSON
// area (zero-padded) and the checksum over both.
func (h *Header) encode(magic []byte, off int64, js []byte) ([]byte, error) {
	newHash, err := hashByName(h.CsumAlg)
	if err != nil {
		return nil, fmt.Errorf("luks2: header checksum: %w", err)
	}
	b := make([]byte, h.HdrSize)
	copy(b, magic)
	binary.BigEndian.PutUint16(b[offVersion:], uint16(h.Version))
	binary.BigEndian.PutUint64(b[offHdrSize:], uint64(h.HdrSize))
	binary.BigEndian.PutUint64(b[offSeqID:], h.SeqID)
	copy(b[offLabel:offCsumAlg-1], h.Label)
	copy(b[offCsumAlg:offSalt-1], h.CsumAlg)
	copy(b[offSalt:offUUID], h.Salt)
	copy(b[offUUID:offSubsystem-1], h.UUID)
	copy(b[offSubsystem:offHdrOffset-1], h.Subsystem)
	binary.BigEndian.PutUint64(b[offHdrOffset:], uint64(off))
	copy(b[binHeaderSize:], js)
	copy(b[offCsum:], checksum(b, newHash))
	return b, nil
}

// afSplit is afMerge's inverse: stripes-1 random stripes (from random),
// and a last one that makes the merge give key.
func afSplit(key, random []byte, h func() hash.Hash) []byte {
	n := len(key)
	out := make([]byte, len(random)+n)
	copy(out, random)
	d := make([]byte, n)
	for i := 0; i*n < len(random); i++ {
		for j := range d {
			d[j] ^= random[i*n+j]
		}
		diffuse(d, h)
	}
	last := out[len(random):]
	for j := range last {
		last[j] = d[j] ^ key[j]
	}
	clear(d)
	return out
}

// String says what the costs are, for progress lines: "argon2id, 1 GiB,
// 4 passes".
func (p KDFParams) String() string {
	if p.Type == "" {
		p = DefaultKDF
	}
	if p.Type == "pbkdf2" {
		return fmt.Sprintf("pbkdf2-sha256, %d iterations", p.Iterations)
	}
	return fmt.Sprintf("%s, %s, %d passes", p.Type, kib(int64(p.Memory)), p.Time)
}

// String says what a keyslot's key derivation costs: "argon2id, 1 GiB,
// 4 passes".
func (k KDF) String() string {
	if k.Type == "pbkdf2" {
		return fmt.Sprintf("pbkdf2-%s, %d iterations", k.Hash, k.Iterations)
	}
	return fmt.Sprintf("%s, %s, %d passes", k.Type, kib(k.Memory), k.Time)
}

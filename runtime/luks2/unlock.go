package luks2

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
	"strconv"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/xts"
)

var (
	// ErrWrongPassphrase reports a passphrase that opens no keyslot.
	ErrWrongPassphrase = errors.New("luks2: no keyslot opens with this passphrase")
	// ErrKDFCost reports key-derivation costs beyond Limits: the header
	// asks for more work or memory than a save.dat ever needs (a crafted
	// one would keep the node busy, or out of memory, at boot). Nothing
	// is derived.
	ErrKDFCost = errors.New("luks2: key-derivation costs out of bounds")
	// ErrNoKeyslot reports a header in which no keyslot can open the data
	// segment (none is bound to it, or none is of a kind this package
	// opens): no passphrase will do.
	ErrNoKeyslot = errors.New("luks2: no usable keyslot for the data segment")
)

// areaSectorSize is the sector size of keyslot areas: the IV of sector n
// is n (plain64), counted from the start of the area.
const areaSectorSize = 512

// Bounds on key derivation, for the volumes Format makes (KDFParams.Check)
// and for the headers Unlock reads (Limits). A save.dat is unlocked by
// byz-init, PID 1 at boot, from a header anyone with the stick could have
// crafted: its costs are checked before any key is derived.
const (
	// MaxArgon2Memory is argon2's memory ceiling (KiB), cryptsetup's own.
	MaxArgon2Memory = 4 << 20
	// MaxArgon2Work bounds one argon2 derivation: passes × memory (KiB),
	// 16 GiB-passes, four times DefaultKDF (about 30 s on a two-core
	// machine where DefaultKDF takes 7 s).
	MaxArgon2Work = 16 << 20
	// MaxPBKDF2Iterations bounds one pbkdf2 derivation (a keyslot's or a
	// digest's): 2^26, several times what cryptsetup's 2 s benchmark
	// chooses (about 13 s of sha256 here).
	MaxPBKDF2Iterations = 1 << 26
	// maxArgon2Lanes is what golang.org/x/crypto/argon2 takes (a uint8).
	maxArgon2Lanes = 255
)

// Limits bound what one Unlock may derive. DefaultLimits are the ones
// Unlock uses.
type Limits struct {
	// MemoryKiB is the most argon2 memory one keyslot may take.
	MemoryKiB int64
	// Argon2Work bounds one keyslot's argon2 passes × memory (KiB), and
	// PBKDF2Iterations one pbkdf2 derivation.
	Argon2Work, PBKDF2Iterations int64
	// TotalArgon2Work and TotalPBKDF2Iterations bound all the keyslots
	// one Unlock may try: a header of 32 keyslots each just under the
	// bound is refused whole, before any is tried.
	TotalArgon2Work, TotalPBKDF2Iterations int64
}

// DefaultLimits are the absolute bounds, with argon2's memory further
// held to three quarters of this machine's RAM: asking for more would
// have the kernel kill the process (PID 1 at boot: a panic).
func DefaultLimits() Limits {
	l := Limits{MemoryKiB: MaxArgon2Memory, Argon2Work: MaxArgon2Work, PBKDF2Iterations: MaxPBKDF2Iterations,
		TotalArgon2Work: 2 * MaxArgon2Work, TotalPBKDF2Iterations: 2 * MaxPBKDF2Iterations}
	if ram := physicalRAMKiB(); ram > 0 {
		l.MemoryKiB = min(l.MemoryKiB, ram/4*3)
	}
	return l
}

// kdfRuns counts key derivations (keyslot KDFs and digest checks), so
// tests can assert that a hostile header derived nothing.
var kdfRuns atomic.Int64

// Unlock derives the volume key from passphrase with DefaultLimits: see
// Limits.Unlock.
func Unlock(r io.ReaderAt, h *Header, passphrase []byte) (key []byte, slot string, err error) {
	return DefaultLimits().Unlock(r, h, passphrase)
}

// Unlock derives the volume key of h's data segment from passphrase: it
// tries, in priority order (high, then normal; never "ignore"), each
// keyslot bound to that segment (whose digest covers it; an unbound
// keyslot holds some other key) and returns the key the segment's
// digest accepts, with the keyslot's ID. Every keyslot's costs are
// checked against l before anything is derived. The caller wipes the key.
// A passphrase that opens nothing is ErrWrongPassphrase.
func (l Limits) Unlock(r io.ReaderAt, h *Header, passphrase []byte) (key []byte, slot string, err error) {
	digest, err := h.segmentDigest()
	if err != nil {
		return nil, "", err
	}
	if err := l.checkDigest(h.Metadata.Digests[digest]); err != nil {
		return nil, "", err
	}
	var errs []error
	var argonWork, pbkdf2Iters int64
	var run []string
	for _, id := range keyslotOrder(h) {
		ks := h.Metadata.Keyslots[id]
		if ks.Type != "luks2" {
			errs = append(errs, fmt.Errorf("keyslot %s: type %q is not one this package opens", id, ks.Type))
			continue
		}
		if d, _ := h.keyslotDigest(id); d != digest {
			errs = append(errs, fmt.Errorf("keyslot %s: unbound (it does not hold the data segment's key)", id))
			continue
		}
		if err := checkKeyslot(ks); err != nil {
			errs = append(errs, fmt.Errorf("keyslot %s: %w", id, err))
			continue
		}
		a, p, err := l.cost(ks.KDF, ks.Area.KeySize)
		if err != nil {
			errs = append(errs, fmt.Errorf("keyslot %s: %w", id, err))
			continue
		}
		argonWork, pbkdf2Iters = argonWork+a, pbkdf2Iters+p
		run = append(run, id)
	}
	if argonWork > l.TotalArgon2Work || pbkdf2Iters > l.TotalPBKDF2Iterations {
		return nil, "", fmt.Errorf("%w: together the keyslots ask for %d KiB-passes of argon2 and %d pbkdf2 iterations (at most %d and %d)",
			ErrKDFCost, argonWork, pbkdf2Iters, l.TotalArgon2Work, l.TotalPBKDF2Iterations)
	}
	if len(run) == 0 {
		return nil, "", errors.Join(append([]error{ErrNoKeyslot}, errs...)...)
	}
	d := h.Metadata.Digests[digest]
	for _, id := range run {
		key, err := openKeyslot(r, h.Metadata.Keyslots[id], passphrase)
		if err != nil {
			errs = append(errs, fmt.Errorf("keyslot %s: %w", id, err))
			continue
		}
		ok, err := verifyDigest(d, key)
		if err != nil {
			errs = append(errs, fmt.Errorf("keyslot %s: %w", id, err))
		}
		if ok {
			return key, id, nil
		}
		clear(key)
	}
	return nil, "", errors.Join(append([]error{ErrWrongPassphrase}, errs...)...)
}

// DefaultSegment is the segment a volume's data is in: cryptsetup's
// "backup-final" one during a re-encryption, else segment 0.
func (h *Header) DefaultSegment() string {
	for id, s := range h.Metadata.Segments {
		if slices.Contains(s.Flags, "backup-final") {
			return id
		}
	}
	return "0"
}

// segmentDigest is the ID of the digest covering the default segment.
func (h *Header) segmentDigest() (string, error) {
	seg := h.DefaultSegment()
	for _, id := range sortedIDs(h.Metadata.Digests) {
		if slices.Contains(h.Metadata.Digests[id].Segments, seg) {
			return id, nil
		}
	}
	return "", fmt.Errorf("%w: no digest covers segment %s", ErrNoKeyslot, seg)
}

// keyslotDigest is the ID of the digest naming keyslot id.
func (h *Header) keyslotDigest(id string) (string, bool) {
	for _, d := range sortedIDs(h.Metadata.Digests) {
		if slices.Contains(h.Metadata.Digests[d].Keyslots, id) {
			return d, true
		}
	}
	return "", false
}

// Bound reports whether keyslot id holds the key of the data segment.
func (h *Header) Bound(id string) bool {
	d, ok := h.keyslotDigest(id)
	seg, err := h.segmentDigest()
	return ok && err == nil && d == seg
}

func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, byNumber)
	return ids
}

func byNumber(a, b string) int {
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	return x - y
}

// keyslotOrder lists the keyslot IDs to try: priority 2 (high) first,
// then 1 (normal, the default), in numeric order; 0 (ignore) never.
func keyslotOrder(h *Header) []string {
	var high, normal []string
	for id, ks := range h.Metadata.Keyslots {
		switch {
		case ks.Priority == nil || *ks.Priority == 1:
			normal = append(normal, id)
		case *ks.Priority == 2:
			high = append(high, id)
		}
	}
	slices.SortFunc(high, byNumber)
	slices.SortFunc(normal, byNumber)
	return append(high, normal...)
}

// checkKeyslot checks what openKeyslot needs of a keyslot besides its KDF.
func checkKeyslot(ks Keyslot) error {
	if ks.Area.Type != "raw" || ks.AF.Type != "luks1" {
		return fmt.Errorf("unsupported keyslot (area %q, af %q)", ks.Area.Type, ks.AF.Type)
	}
	if _, err := areaCipherKey(ks.Area.Encryption, ks.Area.KeySize); err != nil {
		return err
	}
	if ks.AF.Stripes != afStripesLUKS {
		return fmt.Errorf("%d anti-forensic stripes: only %d are supported", ks.AF.Stripes, afStripesLUKS)
	}
	if ks.KeySize <= 0 || ks.KeySize > 256 {
		return fmt.Errorf("a %d-byte key is out of range", ks.KeySize)
	}
	if _, err := hashByName(ks.AF.Hash); err != nil {
		return fmt.Errorf("anti-forensic %w", err)
	}
	size, err := Uint64(ks.Area.Size)
	if err != nil {
		return err
	}
	if n := afSectors(ks.KeySize) * areaSectorSize; uint64(n) > size {
		return fmt.Errorf("the area (%d bytes) is too small for %d stripes of %d bytes", size, afStripesLUKS, ks.KeySize)
	}
	return nil
}

// afSectors is the number of area sectors the split key takes.
func afSectors(keySize int) int {
	return (keySize*afStripesLUKS + areaSectorSize - 1) / areaSectorSize
}

// cost checks one keyslot KDF against l, giving out bytes of key, and
// returns its argon2 work (passes × KiB) or pbkdf2 iterations.
func (l Limits) cost(k KDF, out int) (argonWork, pbkdf2Iters int64, err error) {
	if len(k.Salt) != 32 {
		return 0, 0, fmt.Errorf("a %d-byte KDF salt (LUKS2 uses 32)", len(k.Salt))
	}
	switch k.Type {
	case "argon2id", "argon2i":
		switch {
		case k.Time < 1 || k.Time > math.MaxUint32:
			return 0, 0, fmt.Errorf("%w: argon2 with %d passes", ErrKDFCost, k.Time)
		case k.CPUs < 1 || k.CPUs > maxArgon2Lanes:
			return 0, 0, fmt.Errorf("%w: argon2 with %d lanes (1 to %d)", ErrKDFCost, k.CPUs, maxArgon2Lanes)
		case k.Memory < 8*k.CPUs || k.Memory > math.MaxUint32:
			return 0, 0, fmt.Errorf("%w: argon2 with %d KiB for %d lanes", ErrKDFCost, k.Memory, k.CPUs)
		case k.Memory > l.MemoryKiB:
			return 0, 0, fmt.Errorf("%w: argon2 asks for %s of memory; at most %s here (three quarters of the RAM, 4 GiB at most)",
				ErrKDFCost, kib(k.Memory), kib(l.MemoryKiB))
		case k.Time > l.Argon2Work/k.Memory:
			return 0, 0, fmt.Errorf("%w: argon2 asks for %d passes over %s (at most %d KiB-passes; that is %d)",
				ErrKDFCost, k.Time, kib(k.Memory), l.Argon2Work, l.Argon2Work/k.Memory)
		}
		return k.Time * k.Memory, 0, nil
	case "pbkdf2":
		if _, err := hashByName(k.Hash); err != nil {
			return 0, 0, err
		}
		if k.Iterations < 1 || k.Iterations > l.PBKDF2Iterations {
			return 0, 0, fmt.Errorf("%w: pbkdf2 with %d iterations (1 to %d)", ErrKDFCost, k.Iterations, l.PBKDF2Iterations)
		}
		return 0, k.Iterations, nil
	}
	return 0, 0, fmt.Errorf("KDF %q is not supported", k.Type)
}

// checkDigest checks a pbkdf2 digest before it is ever computed.
func (l Limits) checkDigest(d Digest) error {
	if d.Type != "pbkdf2" {
		return fmt.Errorf("digest type %q is not supported", d.Type)
	}
	h, err := hashByName(d.Hash)
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if len(d.Salt) != 32 || len(d.Digest) != 32 && len(d.Digest) != h().Size() {
		return fmt.Errorf("digest: a %d-byte salt and a %d-byte value (want 32 and 32 or %d)", len(d.Salt), len(d.Digest), h().Size())
	}
	if d.Iterations < 1 || d.Iterations > l.PBKDF2Iterations {
		return fmt.Errorf("%w: the digest's pbkdf2 with %d iterations (1 to %d)", ErrKDFCost, d.Iterations, l.PBKDF2Iterations)
	}
	return nil
}

// kib writes a size given in KiB in the largest unit that divides it.
func kib(n int64) string {
	switch {
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d GiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d MiB", n>>10)
	}
	return fmt.Sprintf("%d KiB", n)
}

// openKeyslot derives the area key from the passphrase, decrypts the
// keyslot's anti-forensic material and merges it into a candidate key.
// The keyslot passed checkKeyslot and Limits.cost.
func openKeyslot(r io.ReaderAt, ks Keyslot, passphrase []byte) ([]byte, error) {
	afHash, err := hashByName(ks.AF.Hash)
	if err != nil {
		return nil, err
	}
	off, err := Uint64(ks.Area.Offset)
	if err != nil || off > math.MaxInt64 {
		return nil, fmt.Errorf("area offset %q", ks.Area.Offset)
	}
	areaKey, err := deriveKey(ks.KDF, passphrase, ks.Area.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(areaKey)
	c, err := newAreaCipher(ks.Area.Encryption, areaKey)
	if err != nil {
		return nil, err
	}
	sectors := afSectors(ks.KeySize)
	material := make([]byte, sectors*areaSectorSize)
	defer clear(material)
	if _, err := r.ReadAt(material, int64(off)); err != nil {
		return nil, fmt.Errorf("reading the keyslot area at %d: %w", off, err)
	}
	for i := 0; i < sectors; i++ {
		s := material[i*areaSectorSize : (i+1)*areaSectorSize]
		c.decrypt(s, uint64(i))
	}
	return afMerge(material[:ks.KeySize*afStripesLUKS], ks.KeySize, afStripesLUKS, afHash), nil
}

// deriveKey runs a keyslot's KDF. Its costs were checked (Limits.cost,
// or KDFParams.Check for a new keyslot); the checks here only keep the
// conversions to argon2's types exact.
func deriveKey(k KDF, passphrase []byte, n int) ([]byte, error) {
	switch k.Type {
	case "argon2id", "argon2i":
		if k.Time < 1 || k.Time > math.MaxUint32 || k.Memory < 1 || k.Memory > math.MaxUint32 || k.CPUs < 1 || k.CPUs > maxArgon2Lanes {
			return nil, fmt.Errorf("%w: argon2 time %d, memory %d KiB, %d lanes", ErrKDFCost, k.Time, k.Memory, k.CPUs)
		}
		f := argon2.IDKey
		if k.Type == "argon2i" {
			f = argon2.Key
		}
		kdfRuns.Add(1)
		return f(passphrase, k.Salt, uint32(k.Time), uint32(k.Memory), uint8(k.CPUs), uint32(n)), nil
	case "pbkdf2":
		h, err := hashByName(k.Hash)
		if err != nil {
			return nil, err
		}
		if k.Iterations < 1 || k.Iterations > math.MaxInt32 {
			return nil, fmt.Errorf("%w: pbkdf2 with %d iterations", ErrKDFCost, k.Iterations)
		}
		kdfRuns.Add(1)
		return pbkdf2.Key(h, string(passphrase), k.Salt, int(k.Iterations), n)
	}
	return nil, fmt.Errorf("KDF %q is not supported", k.Type)
}

// verifyDigest checks a candidate key against a digest that passed
// Limits.checkDigest.
func verifyDigest(d Digest, key []byte) (bool, error) {
	hf, err := hashByName(d.Hash)
	if err != nil {
		return false, err
	}
	if d.Iterations < 1 || d.Iterations > math.MaxInt32 || len(d.Digest) == 0 {
		return false, errors.New("a digest without iterations or value")
	}
	kdfRuns.Add(1)
	got, err := pbkdf2.Key(hf, string(key), d.Salt, int(d.Iterations), len(d.Digest))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, d.Digest) == 1, nil
}

// areaCipher encrypts and decrypts keyslot area sectors.
type areaCipher struct {
	xts   *xts.Cipher
	block cipher.Block // cbc-essiv
	essiv cipher.Block
}

// areaCipherKey checks a keyslot area's cipher and key size; the
// ciphers are cryptsetup's default (aes-xts-plain64) and the one of
// older volumes (aes-cbc-essiv:sha256).
func areaCipherKey(spec string, keySize int) (string, error) {
	switch {
	case spec == "aes-xts-plain64" && (keySize == 32 || keySize == 64),
		spec == "aes-cbc-essiv:sha256" && (keySize == 16 || keySize == 24 || keySize == 32):
		return spec, nil
	case spec == "aes-xts-plain64" || spec == "aes-cbc-essiv:sha256":
		return "", fmt.Errorf("area cipher %s with a %d-byte key", spec, keySize)
	}
	return "", fmt.Errorf("area cipher %q: only aes-xts-plain64 and aes-cbc-essiv:sha256 are supported", spec)
}

func newAreaCipher(spec string, key []byte) (*areaCipher, error) {
	if _, err := areaCipherKey(spec, len(key)); err != nil {
		return nil, err
	}
	if spec == "aes-xts-plain64" {
		c, err := xts.NewCipher(aes.NewCipher, key)
		return &areaCipher{xts: c}, err
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	salt := sha256.Sum256(key)
	e, err := aes.NewCipher(salt[:])
	return &areaCipher{block: b, essiv: e}, err
}

func (c *areaCipher) iv(n uint64) []byte {
	iv := make([]byte, aes.BlockSize)
	binary.LittleEndian.PutUint64(iv, n)
	c.essiv.Encrypt(iv, iv)
	return iv
}

func (c *areaCipher) decrypt(s []byte, n uint64) {
	if c.xts != nil {
		c.xts.Decrypt(s, s, n)
		return
	}
	cipher.NewCBCDecrypter(c.block, c.iv(n)).CryptBlocks(s, s)
}

func (c *areaCipher) encrypt(s []byte, n uint64) {
	if c.xts != nil {
		c.xts.Encrypt(s, s, n)
		return
	}
	cipher.NewCBCEncrypter(c.block, c.iv(n)).CryptBlocks(s, s)
}

// afMerge undoes LUKS's anti-forensic split: the key is the last stripe
// XORed with the diffusion of the XOR chain of all the others.
func afMerge(material []byte, keySize, stripes int, h func() hash.Hash) []byte {
	d := make([]byte, keySize)
	for i := 0; i < stripes-1; i++ {
		subtle.XORBytes(d, d, material[i*keySize:(i+1)*keySize])
		diffuse(d, h)
	}
	key := make([]byte, keySize)
	subtle.XORBytes(key, d, material[(stripes-1)*keySize:stripes*keySize])
	clear(d)
	return key
}

// diffuse replaces each hash-sized block j of b with H(be32(j) || block),
// the last block truncated to its length.
func diffuse(b []byte, h func() hash.Hash) {
	hh := h()
	size := hh.Size()
	var iv [4]byte
	for j := 0; j*size < len(b); j++ {
		blk := b[j*size : min((j+1)*size, len(b))]
		hh.Reset()
		binary.BigEndian.PutUint32(iv[:], uint32(j))
		hh.Write(iv[:])
		hh.Write(blk)
		copy(blk, hh.Sum(nil))
	}
}

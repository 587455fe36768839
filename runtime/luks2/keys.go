package luks2

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// maxKeyslots is how many keyslots a LUKS2 volume has room for.
const maxKeyslots = 32

// keyslotAreaSize is the area a keyslot of a keySize-byte volume key
// takes: its split key rounded up to 4 KiB, as cryptsetup lays it out.
func keyslotAreaSize(keySize int) int {
	return (afSectors(keySize)*areaSectorSize + 4095) / 4096 * 4096
}

// newKeyslot makes a keyslot at offset holding key under passphrase: the
// key split into stripes (afSplit), encrypted with aes-xts-plain64 under
// a key the KDF derives from the passphrase. It returns the keyslot and
// its area's bytes.
func newKeyslot(key, passphrase []byte, kdf KDFParams, offset int64, rnd io.Reader) (Keyslot, []byte, error) {
	random := func(n int) ([]byte, error) { return randomBytes(rnd, n) }
	if len(passphrase) == 0 {
		return Keyslot{}, nil, fmt.Errorf("%w: an empty passphrase", ErrBadFormatOption)
	}
	if len(key) == 0 || len(key) > 256 {
		return Keyslot{}, nil, fmt.Errorf("%w: a %d-byte key", ErrBadFormatOption, len(key))
	}
	if err := kdf.Check(); err != nil {
		return Keyslot{}, nil, err
	}
	if kdf.Type == "" {
		kdf = DefaultKDF
	}
	salt, err := random(32)
	if err != nil {
		return Keyslot{}, nil, err
	}
	size := keyslotAreaSize(len(key))
	ks := Keyslot{Type: "luks2", KeySize: len(key),
		Area: Area{Type: "raw", Offset: strconv.FormatInt(offset, 10), Size: strconv.Itoa(size),
			Encryption: "aes-xts-plain64", KeySize: 64},
		AF: AF{Type: "luks1", Stripes: afStripesLUKS, Hash: "sha256"},
	}
	if kdf.Type == "argon2id" {
		ks.KDF = KDF{Type: "argon2id", Salt: salt, Time: int64(kdf.Time), Memory: int64(kdf.Memory), CPUs: int64(kdf.Threads)}
	} else {
		ks.KDF = KDF{Type: "pbkdf2", Salt: salt, Hash: "sha256", Iterations: int64(kdf.Iterations)}
	}
	stripes, err := random(len(key) * (afStripesLUKS - 1))
	if err != nil {
		return Keyslot{}, nil, err
	}
	material := afSplit(key, stripes, sha256.New)
	clear(stripes)
	defer clear(material)
	areaKey, err := deriveKey(ks.KDF, passphrase, ks.Area.KeySize)
	if err != nil {
		return Keyslot{}, nil, err
	}
	defer clear(areaKey)
	c, err := newAreaCipher(ks.Area.Encryption, areaKey)
	if err != nil {
		return Keyslot{}, nil, err
	}
	area := make([]byte, size) // the tail past the material stays zero
	copy(area, material)
	for i := 0; i*areaSectorSize < len(area); i++ {
		c.encrypt(area[i*areaSectorSize:(i+1)*areaSectorSize], uint64(i))
	}
	return ks, area, nil
}

// ReadWriterAt is a volume being updated.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// AddKey adds a keyslot holding volumeKey (from Unlock) under passphrase,
// bound to the data segment, in the first free place of the keyslots
// area, and rewrites both header copies with the next sequence number. It
// returns the new keyslot's ID. rnd nil means crypto/rand. Nothing is
// written to a volume with requirements (CheckWrite), with a key that is
// not its data segment's, or when the new metadata would not be valid.
func AddKey(v ReadWriterAt, h *Header, volumeKey, passphrase []byte, kdf KDFParams, rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if err := h.CheckWrite(); err != nil {
		return "", err
	}
	if err := kdf.Check(); err != nil {
		return "", err
	}
	digest, err := h.segmentDigest()
	if err != nil {
		return "", err
	}
	d := h.Metadata.Digests[digest]
	if err := DefaultLimits().checkDigest(d); err != nil {
		return "", fmt.Errorf("luks2: AddKey: %w", err)
	}
	if ok, err := verifyDigest(d, volumeKey); err != nil || !ok {
		return "", errors.New("luks2: AddKey: the key is not this volume's (its digest does not match)")
	}
	slot := ""
	for id := 0; id < maxKeyslots; id++ {
		if _, used := h.Metadata.Keyslots[strconv.Itoa(id)]; !used {
			slot = strconv.Itoa(id)
			break
		}
	}
	if slot == "" {
		return "", fmt.Errorf("luks2: AddKey: all %d keyslots are in use", maxKeyslots)
	}
	off, err := h.freeArea(uint64(keyslotAreaSize(len(volumeKey))))
	if err != nil {
		return "", err
	}
	ks, area, err := newKeyslot(volumeKey, passphrase, kdf, off, rnd)
	if err != nil {
		return "", err
	}
	ksJSON, err := toTree(ks)
	if err != nil {
		return "", err
	}
	err = h.update(v, func(root *jval) error {
		root.get("keyslots").set(slot, ksJSON)
		dk := root.get("digests").get(digest).get("keyslots")
		dk.arr = append(dk.arr, jstring(slot))
		return nil
	}, func() error {
		_, err := v.WriteAt(area, off)
		return err
	})
	if err != nil {
		return "", err
	}
	return slot, nil
}

// RemoveKey removes keyslot slot (from its digest and tokens too) and
// wipes its area. Removing the last keyslot bound to the data segment is
// refused: nothing could open the volume again.
func RemoveKey(v ReadWriterAt, h *Header, slot string) error {
	if err := h.CheckWrite(); err != nil {
		return err
	}
	ks, ok := h.Metadata.Keyslots[slot]
	if !ok {
		return fmt.Errorf("luks2: RemoveKey: no keyslot %s", slot)
	}
	if h.Bound(slot) {
		others := false
		for id := range h.Metadata.Keyslots {
			others = others || id != slot && h.Bound(id)
		}
		if !others {
			return fmt.Errorf("luks2: RemoveKey: keyslot %s is the last one that opens the data; removing it would lock the volume for good", slot)
		}
	}
	off, err1 := Uint64(ks.Area.Offset)
	size, err2 := Uint64(ks.Area.Size)
	if err1 != nil || err2 != nil || off > math.MaxInt64-size {
		return fmt.Errorf("luks2: RemoveKey: keyslot %s has no usable area", slot)
	}
	// The wipe must not reach another keyslot's material (update checks
	// the metadata too; this keeps the wipe safe on its own).
	for id, other := range h.Metadata.Keyslots {
		o, err1 := Uint64(other.Area.Offset)
		s, err2 := Uint64(other.Area.Size)
		e, ok := addU64(o, s)
		if id != slot && (err1 != nil || err2 != nil || !ok || o < off+size && off < e) {
			return fmt.Errorf("luks2: RemoveKey: keyslot %s's area overlaps keyslot %s's; nothing was written", slot, id)
		}
	}
	return h.update(v, func(root *jval) error {
		root.get("keyslots").del(slot)
		for _, section := range []string{"digests", "tokens"} {
			for _, m := range root.get(section).obj {
				if ks := m.val.get("keyslots"); ks.is(jArray) {
					ks.arr = slices.DeleteFunc(ks.arr, func(e *jval) bool { return e.str() == slot })
				}
			}
		}
		return nil
	}, nil, func() error {
		// The area is wiped after the headers no longer point at it.
		return wipe(v, int64(off), int64(size))
	})
}

// wipe writes size zero bytes at off, a megabyte at a time.
func wipe(w io.WriterAt, off, size int64) error {
	zeros := make([]byte, min(size, 1<<20))
	for size > 0 {
		n := min(size, int64(len(zeros)))
		if _, err := w.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off, size = off+n, size-n
	}
	return nil
}

// toTree converts a value to the JSON tree through encoding/json.
func toTree(v any) (*jval, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("luks2: %w", err)
	}
	t, _, err := parseJSON(b)
	if err != nil {
		return nil, fmt.Errorf("luks2: %w", err)
	}
	return t, nil
}

// update applies edit to a copy of the metadata and writes both copies
// with the next sequence number: before runs first (a new keyslot's
// area), after last (wiping a removed one). The new metadata must pass
// the checks Read makes, or nothing is written. The primary is written
// before the secondary; Read takes the newer valid copy, so a crash
// between the two leaves a volume that opens with either the old or the
// new metadata.
func (h *Header) update(v io.WriterAt, edit func(*jval) error, before func() error, after ...func() error) error {
	if err := h.CheckWrite(); err != nil {
		return err
	}
	// A Header comes from Read or Format, which validated it; one made
	// some other way is checked here, so no edit starts from metadata
	// cryptsetup would refuse (overlapping areas, say).
	if h.tree == nil {
		return errors.New("luks2: a header without metadata")
	}
	if err := validateTree(h.tree, uint64(h.HdrSize-binHeaderSize)); err != nil {
		return fmt.Errorf("luks2: the metadata is not valid, so nothing was written: %w", err)
	}
	root := h.tree.clone()
	if err := edit(root); err != nil {
		return fmt.Errorf("luks2: metadata: %w", err)
	}
	js := root.compact()
	area := make([]byte, h.HdrSize-binHeaderSize)
	if len(js) >= len(area) {
		return fmt.Errorf("luks2: metadata of %d bytes does not fit the %d-byte JSON area", len(js), len(area))
	}
	copy(area, js)
	checked, err := checkArea(area)
	if err != nil {
		return fmt.Errorf("luks2: the new metadata would not be valid, so nothing was written: %w", err)
	}
	if before != nil {
		if err := before(); err != nil {
			return fmt.Errorf("luks2: %w", err)
		}
	}
	next := *h
	next.SeqID++
	next.tree, next.Metadata = checked, decodeMetadata(checked)
	for i, magic := range [][]byte{magicPrimary, magicSecondary} {
		off := int64(i) * h.HdrSize
		b, err := next.encode(magic, off, js)
		if err != nil {
			return err
		}
		if _, err := v.WriteAt(b, off); err != nil {
			return fmt.Errorf("luks2: writing the header: %w", err)
		}
	}
	*h = next
	for _, f := range after {
		if err := f(); err != nil {
			return fmt.Errorf("luks2: %w", err)
		}
	}
	return nil
}

// freeArea returns the lowest 4 KiB-aligned offset in the keyslots area
// where need bytes overlap no keyslot's area. The arithmetic cannot
// overflow: a header whose areas would make it do so did not pass Read,
// and the search checks each sum anyway.
func (h *Header) freeArea(need uint64) (int64, error) {
	_, keyslotsSize := configSizes(h.tree)
	start := uint64(2 * h.HdrSize)
	end, ok := addU64(start, keyslotsSize)
	if !ok {
		return 0, errors.New("luks2: the keyslots area overflows")
	}
	type span struct{ off, end uint64 }
	var used []span
	for id, ks := range h.Metadata.Keyslots {
		o, err1 := Uint64(ks.Area.Offset)
		s, err2 := Uint64(ks.Area.Size)
		e, ok := addU64(o, s)
		if err1 != nil || err2 != nil || !ok {
			return 0, fmt.Errorf("luks2: keyslot %s has an area that overflows", id)
		}
		used = append(used, span{o, e})
	}
	slices.SortFunc(used, func(a, b span) int {
		switch {
		case a.off < b.off:
			return -1
		case a.off > b.off:
			return 1
		}
		return 0
	})
	at := start
	for _, u := range append(used, span{end, end}) {
		if want, ok := addU64(at, need); ok && want <= u.off && want <= end {
			return int64(at), nil
		}
		if u.end > at {
			at = u.end
		}
		if at%4096 != 0 {
			if at, ok = addU64(at, 4096-at%4096); !ok {
				break
			}
		}
	}
	return 0, fmt.Errorf("luks2: the keyslots area has no free %d bytes", need)
}

func addU64(a, b uint64) (uint64, bool) {
	if a > math.MaxUint64-b {
		return 0, false
	}
	return a + b, true
}

// randomBytes reads n bytes from rnd.
func randomBytes(rnd io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, fmt.Errorf("luks2: random bytes: %w", err)
	}
	return b, nil
}

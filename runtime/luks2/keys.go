package luks2

import (
	"crypto/aes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"golang.org/x/crypto/xts"
)

// newKeyslot makes a keyslot at offset holding key under passphrase: the
// key split into stripes (afSplit), encrypted with aes-xts-plain64 under
// a key the KDF derives from the passphrase. It returns the keyslot and
// its area's bytes.
func newKeyslot(key, passphrase []byte, kdf KDFParams, offset int64, rnd io.Reader) (Keyslot, []byte, error) {
	random := func(n int) ([]byte, error) { return randomBytes(rnd, n) }
	if len(passphrase) == 0 {
		return Keyslot{}, nil, fmt.Errorf("%w: an empty passphrase", ErrBadFormatOption)
	}
	if kdf.Type == "" {
		kdf = DefaultKDF
	}
	salt, err := random(32)
	if err != nil {
		return Keyslot{}, nil, err
	}
	ks := Keyslot{Type: "luks2", KeySize: len(key),
		Area: Area{Type: "raw", Offset: strconv.FormatInt(offset, 10), Size: strconv.Itoa(areaSize),
			Encryption: "aes-xts-plain64", KeySize: 64},
		AF: AF{Type: "luks1", Stripes: afStripes, Hash: "sha256"},
	}
	switch kdf.Type {
	case "argon2id":
		if kdf.Time < 1 || kdf.Memory < 32 || kdf.Memory > maxKDFMemory || kdf.Threads < 1 || kdf.Threads > 16 {
			return Keyslot{}, nil, fmt.Errorf("%w: argon2id time %d, memory %d KiB, %d threads", ErrBadFormatOption, kdf.Time, kdf.Memory, kdf.Threads)
		}
		ks.KDF = KDF{Type: "argon2id", Salt: salt, Time: kdf.Time, Memory: kdf.Memory, CPUs: kdf.Threads}
	case "pbkdf2":
		if kdf.Iterations < 1000 {
			return Keyslot{}, nil, fmt.Errorf("%w: pbkdf2 with %d iterations (at least 1000)", ErrBadFormatOption, kdf.Iterations)
		}
		ks.KDF = KDF{Type: "pbkdf2", Salt: salt, Hash: "sha256", Iterations: kdf.Iterations}
	default:
		return Keyslot{}, nil, fmt.Errorf("%w: KDF %q: want argon2id or pbkdf2", ErrBadFormatOption, kdf.Type)
	}
	if len(key)*afStripes > areaSize {
		return Keyslot{}, nil, fmt.Errorf("%w: a %d-byte key does not fit a keyslot area", ErrBadFormatOption, len(key))
	}
	stripes, err := random(len(key) * (afStripes - 1))
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
	c, err := xts.NewCipher(aes.NewCipher, areaKey)
	if err != nil {
		return Keyslot{}, nil, err
	}
	area := make([]byte, areaSize) // the tail past the material stays zero
	copy(area, material)
	for i := 0; i*areaSectorSize < len(area); i++ {
		s := area[i*areaSectorSize : (i+1)*areaSectorSize]
		c.Encrypt(s, s, uint64(i))
	}
	return ks, area, nil
}

// ReadWriterAt is a volume being updated.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// AddKey adds a keyslot holding volumeKey (from Unlock) under passphrase,
// in the first free place of the keyslots area, and rewrites both header
// copies with the next sequence number. It returns the new keyslot's ID.
// rnd nil means crypto/rand.
func AddKey(v ReadWriterAt, h *Header, volumeKey, passphrase []byte, kdf KDFParams, rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	digest := ""
	for id, d := range h.Metadata.Digests {
		if len(d.Keyslots) > 0 {
			if ok, err := h.verify(d.Keyslots[0], volumeKey); err == nil && ok {
				digest = id
				break
			}
		}
	}
	if digest == "" {
		return "", errors.New("luks2: AddKey: the key is not this volume's (no digest matches)")
	}
	id := 0
	for ; ; id++ {
		if _, used := h.Metadata.Keyslots[strconv.Itoa(id)]; !used {
			break
		}
	}
	off, err := h.freeArea()
	if err != nil {
		return "", err
	}
	ks, area, err := newKeyslot(volumeKey, passphrase, kdf, off, rnd)
	if err != nil {
		return "", err
	}
	slot := strconv.Itoa(id)
	err = h.update(v, func(m map[string]any) error {
		b, err := json.Marshal(ks)
		if err != nil {
			return err
		}
		var ksm any
		if err := json.Unmarshal(b, &ksm); err != nil {
			return err
		}
		child(m, "keyslots")[slot] = ksm
		d := child(child(m, "digests"), digest)
		d["keyslots"] = append(asList(d["keyslots"]), slot)
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

// RemoveKey removes keyslot slot and wipes its area. Removing the last
// keyslot is refused: nothing could open the volume again.
func RemoveKey(v ReadWriterAt, h *Header, slot string) error {
	ks, ok := h.Metadata.Keyslots[slot]
	if !ok {
		return fmt.Errorf("luks2: RemoveKey: no keyslot %s", slot)
	}
	if len(h.Metadata.Keyslots) == 1 {
		return fmt.Errorf("luks2: RemoveKey: keyslot %s is the last one; removing it would lock the volume for good", slot)
	}
	off, _ := Uint64(ks.Area.Offset)
	size, _ := Uint64(ks.Area.Size)
	return h.update(v, func(m map[string]any) error {
		delete(child(m, "keyslots"), slot)
		for _, d := range child(m, "digests") {
			if dm, ok := d.(map[string]any); ok {
				dm["keyslots"] = slices.DeleteFunc(asList(dm["keyslots"]), func(x any) bool { return x == slot })
			}
		}
		return nil
	}, nil, func() error {
		// The area is wiped after the headers no longer point at it.
		_, err := v.WriteAt(make([]byte, size), int64(off))
		return err
	})
}

// update applies edit to the raw JSON metadata and writes both copies
// with the next sequence number: before runs first (a new keyslot's
// area), after last (wiping a removed one). The primary is written before
// the secondary; Read takes the newer valid copy, so a crash between the
// two leaves a volume that opens with either the old or the new metadata.
func (h *Header) update(v io.WriterAt, edit func(map[string]any) error, before func() error, after ...func() error) error {
	var m map[string]any
	if err := json.Unmarshal(h.raw, &m); err != nil {
		return fmt.Errorf("luks2: metadata: %w", err)
	}
	if err := edit(m); err != nil {
		return fmt.Errorf("luks2: metadata: %w", err)
	}
	js, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("luks2: metadata: %w", err)
	}
	if int64(len(js)) >= h.HdrSize-binHeaderSize {
		return fmt.Errorf("luks2: metadata of %d bytes does not fit the JSON area", len(js))
	}
	var md Metadata
	if err := json.Unmarshal(js, &md); err != nil {
		return fmt.Errorf("luks2: metadata: %w", err)
	}
	if err := md.check(uint64(h.HdrSize)); err != nil {
		return fmt.Errorf("luks2: metadata: %w", err)
	}
	if before != nil {
		if err := before(); err != nil {
			return fmt.Errorf("luks2: %w", err)
		}
	}
	next := *h
	next.SeqID++
	next.Metadata, next.raw = md, js
	for i, magic := range [][]byte{magicPrimary, magicSecondary} {
		off := int64(i) * h.HdrSize
		if _, err := v.WriteAt(next.encode(magic, off, js), off); err != nil {
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

// freeArea returns the first areaSize-long place in the keyslots area
// that no keyslot uses.
func (h *Header) freeArea() (int64, error) {
	end, err := Uint64(h.Metadata.Config.KeyslotsSize)
	if err != nil {
		return 0, err
	}
	end += uint64(2 * h.HdrSize)
	for off := uint64(2 * h.HdrSize); off+areaSize <= end; off += areaSize {
		free := true
		for _, ks := range h.Metadata.Keyslots {
			o, _ := Uint64(ks.Area.Offset)
			s, _ := Uint64(ks.Area.Size)
			if off < o+s && o < off+areaSize {
				free = false
				break
			}
		}
		if free {
			return int64(off), nil
		}
	}
	return 0, errors.New("luks2: the keyslots area is full")
}

// child returns m[k] as an object, making it if absent.
func child(m map[string]any, k string) map[string]any {
	if c, ok := m[k].(map[string]any); ok {
		return c
	}
	c := map[string]any{}
	m[k] = c
	return c
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// randomBytes reads n bytes from rnd.
func randomBytes(rnd io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, fmt.Errorf("luks2: random bytes: %w", err)
	}
	return b, nil
}

package luks2

import (
	"crypto/aes"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/xts"
)

// ErrWrongPassphrase reports a passphrase that opens no keyslot.
var ErrWrongPassphrase = errors.New("luks2: no keyslot opens with this passphrase")

// areaSectorSize is the sector size of keyslot areas: the IV of sector n
// is n (plain64), counted from the start of the area.
const areaSectorSize = 512

// maxKDFMemory bounds the argon2 memory a header may ask for (KiB): a
// hostile header must not make the node allocate without limit. 4 GiB is
// cryptsetup's own ceiling.
const maxKDFMemory = 4 << 20

// Unlock derives the volume key from passphrase: it tries each keyslot in
// priority order (high, then normal; never "ignore") and returns the key
// whose digest matches, with the keyslot's ID. The caller wipes the key
// when done with it. A passphrase that opens nothing is
// ErrWrongPassphrase.
func Unlock(r io.ReaderAt, h *Header, passphrase []byte) (key []byte, slot string, err error) {
	var errs []error
	for _, id := range keyslotOrder(h) {
		ks := h.Metadata.Keyslots[id]
		key, err := openKeyslot(r, ks, passphrase)
		if err != nil {
			errs = append(errs, fmt.Errorf("keyslot %s: %w", id, err))
			continue
		}
		ok, err := h.verify(id, key)
		if err != nil {
			errs = append(errs, fmt.Errorf("keyslot %s: %w", id, err))
		}
		if ok {
			return key, id, nil
		}
		clear(key)
	}
	if len(errs) > 0 {
		return nil, "", errors.Join(append([]error{ErrWrongPassphrase}, errs...)...)
	}
	return nil, "", ErrWrongPassphrase
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
	byNum := func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	}
	slices.SortFunc(high, byNum)
	slices.SortFunc(normal, byNum)
	return append(high, normal...)
}

// openKeyslot derives the area key from the passphrase, decrypts the
// keyslot's anti-forensic material and merges it into a candidate key.
func openKeyslot(r io.ReaderAt, ks Keyslot, passphrase []byte) ([]byte, error) {
	if ks.Type != "luks2" || ks.Area.Type != "raw" || ks.AF.Type != "luks1" {
		return nil, fmt.Errorf("unsupported keyslot (type %q, area %q, af %q)", ks.Type, ks.Area.Type, ks.AF.Type)
	}
	if ks.Area.Encryption != "aes-xts-plain64" {
		return nil, fmt.Errorf("area encryption %q: only aes-xts-plain64 is supported", ks.Area.Encryption)
	}
	if ks.KeySize <= 0 || ks.KeySize > 256 || ks.AF.Stripes <= 0 || ks.AF.Stripes > 1<<16 {
		return nil, fmt.Errorf("key size %d or %d stripes out of range", ks.KeySize, ks.AF.Stripes)
	}
	if ks.Area.KeySize != 32 && ks.Area.KeySize != 64 {
		return nil, fmt.Errorf("area key size %d: aes-xts takes 32 or 64 bytes", ks.Area.KeySize)
	}
	afHash, err := hashByName(ks.AF.Hash)
	if err != nil {
		return nil, err
	}
	off, _ := Uint64(ks.Area.Offset)
	size, _ := Uint64(ks.Area.Size)
	n := ks.KeySize * ks.AF.Stripes
	sectors := (n + areaSectorSize - 1) / areaSectorSize
	if uint64(sectors*areaSectorSize) > size {
		return nil, fmt.Errorf("the area (%d bytes) is too small for %d stripes of %d bytes", size, ks.AF.Stripes, ks.KeySize)
	}
	areaKey, err := deriveKey(ks.KDF, passphrase, ks.Area.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(areaKey)
	c, err := xts.NewCipher(aes.NewCipher, areaKey)
	if err != nil {
		return nil, err
	}
	material := make([]byte, sectors*areaSectorSize)
	defer clear(material)
	if _, err := r.ReadAt(material, int64(off)); err != nil {
		return nil, fmt.Errorf("reading the keyslot area at %d: %w", off, err)
	}
	for i := 0; i < sectors; i++ {
		s := material[i*areaSectorSize : (i+1)*areaSectorSize]
		c.Decrypt(s, s, uint64(i))
	}
	return afMerge(material[:n], ks.KeySize, ks.AF.Stripes, afHash), nil
}

// deriveKey runs a keyslot's KDF.
func deriveKey(k KDF, passphrase []byte, n int) ([]byte, error) {
	switch k.Type {
	case "argon2id", "argon2i":
		if k.Time <= 0 || k.Memory <= 0 || k.Memory > maxKDFMemory || k.CPUs <= 0 || k.CPUs > 255 {
			return nil, fmt.Errorf("argon2 costs out of range: time %d, memory %d KiB, %d threads", k.Time, k.Memory, k.CPUs)
		}
		f := argon2.IDKey
		if k.Type == "argon2i" {
			f = argon2.Key
		}
		return f(passphrase, k.Salt, uint32(k.Time), uint32(k.Memory), uint8(k.CPUs), uint32(n)), nil
	case "pbkdf2":
		h, err := hashByName(k.Hash)
		if err != nil {
			return nil, err
		}
		if k.Iterations <= 0 {
			return nil, fmt.Errorf("pbkdf2 with %d iterations", k.Iterations)
		}
		return pbkdf2.Key(h, string(passphrase), k.Salt, k.Iterations, n)
	}
	return nil, fmt.Errorf("KDF %q is not supported", k.Type)
}

// verify checks a candidate key against the digests that cover keyslot id.
func (h *Header) verify(id string, key []byte) (bool, error) {
	for _, d := range h.Metadata.Digests {
		if !slices.Contains(d.Keyslots, id) {
			continue
		}
		if d.Type != "pbkdf2" {
			return false, fmt.Errorf("digest type %q is not supported", d.Type)
		}
		hf, err := hashByName(d.Hash)
		if err != nil {
			return false, err
		}
		if d.Iterations <= 0 || len(d.Digest) == 0 {
			return false, errors.New("a digest without iterations or value")
		}
		got, err := pbkdf2.Key(hf, string(key), d.Salt, d.Iterations, len(d.Digest))
		if err != nil {
			return false, err
		}
		return subtle.ConstantTimeCompare(got, d.Digest) == 1, nil
	}
	return false, errors.New("no digest covers it")
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

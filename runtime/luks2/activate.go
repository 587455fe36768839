package luks2

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnmetRequirements reports a volume whose config.requirements name
// features this package does not have (a re-encryption under way, OPAL,
// inline integrity tags): cryptsetup refuses to write or activate such a
// volume unless it has them, and so does this package. Reading the
// header and checking a passphrase (cryptsetup's --test-passphrase)
// still work.
var ErrUnmetRequirements = errors.New("luks2: unmet LUKS2 requirements")

// ErrUnsupported reports a valid volume this package cannot activate
// (several segments, integrity, a cipher dm-crypt is not given here).
var ErrUnsupported = errors.New("luks2: unsupported volume")

// CheckWrite reports whether the header may be changed: it names no
// requirement.
func (h *Header) CheckWrite() error {
	if r := h.Metadata.Config.Requirements; len(r) > 0 {
		return fmt.Errorf("%w (%s): the volume needs something byz does not do (a re-encryption under way?); use cryptsetup on it",
			ErrUnmetRequirements, strings.Join(r, ", "))
	}
	return nil
}

// CheckActivate reports whether Open can map the volume: no requirement,
// and one crypt segment, 0, with a cipher and sector size dm-crypt takes
// as CryptTable writes them. byz-init asks it before asking for a
// passphrase.
func (h *Header) CheckActivate() error {
	if err := h.CheckWrite(); err != nil {
		return err
	}
	if len(h.Metadata.Segments) != 1 {
		return fmt.Errorf("%w: %d data segments (one is supported)", ErrUnsupported, len(h.Metadata.Segments))
	}
	seg, ok := h.Metadata.Segments["0"]
	if !ok || seg.Type != "crypt" {
		return fmt.Errorf("%w: segment 0 is not a crypt segment", ErrUnsupported)
	}
	if h.tree.get("segments").get("0").get("integrity") != nil {
		return fmt.Errorf("%w: a segment with integrity protection", ErrUnsupported)
	}
	if _, err := segmentKeySizes(seg.Encryption); err != nil {
		return err
	}
	switch seg.SectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return fmt.Errorf("%w: sector size %d", ErrUnsupported, seg.SectorSize)
	}
	if _, err := h.segmentDigest(); err != nil {
		return err
	}
	return nil
}

// segmentKeySizes are the volume key sizes a data cipher takes.
func segmentKeySizes(cipher string) ([]int, error) {
	switch cipher {
	case "aes-xts-plain64":
		return []int{32, 64}, nil
	case "aes-cbc-essiv:sha256":
		return []int{16, 24, 32}, nil
	}
	return nil, fmt.Errorf("%w: data cipher %q (aes-xts-plain64 and aes-cbc-essiv:sha256 are supported)", ErrUnsupported, cipher)
}

package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrDigest reports a layer whose uncompressed content does not match the
// diff ID the image config records for it.
var ErrDigest = errors.New("oci: layer content does not match its diff ID")

// go-containerregistry checks blob digests only for registry pulls; layouts
// and docker-archives are read as found, and a layout layer's DiffID() is
// the hash of whatever its blob holds now. Checking every layer against the
// diff ID in the image config covers all three sources with one sha256 over
// bytes we read anyway, and ties the module's content to the digests its
// manifest records.

// verifiedImage is an image whose layers fail at their end when their content
// does not match the diff ID in the config.
type verifiedImage struct{ v1.Image }

func (im verifiedImage) Layers() ([]v1.Layer, error) {
	ls, err := im.Image.Layers()
	if err != nil {
		return nil, err
	}
	cf, err := im.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	ids := cf.RootFS.DiffIDs
	if len(ids) != len(ls) {
		return nil, fmt.Errorf("manifest has %d layers, config has %d diff IDs", len(ls), len(ids))
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = verifiedLayer{Layer: l, diffID: ids[i]}
	}
	return out, nil
}

type verifiedLayer struct {
	v1.Layer
	diffID v1.Hash
}

// DiffID returns the config's diff ID, which costs nothing, where the
// layer's own may hash the whole layer.
func (l verifiedLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

func (l verifiedLayer) Uncompressed() (io.ReadCloser, error) {
	want := l.diffID
	if want.Algorithm != "sha256" {
		return nil, fmt.Errorf("diff ID %s: only sha256 is supported", want)
	}
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	return &verifyingReader{rc: rc, h: sha256.New(), want: want}, nil
}

// verifyingReader hashes what it reads and, at EOF, returns ErrDigest instead
// of io.EOF when the hash differs from want.
type verifyingReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want v1.Hash
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Hex {
			return n, fmt.Errorf("%w: read sha256:%s, config says %s", ErrDigest, got, v.want)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.rc.Close() }

// Package oci reads container images as entry streams, through
// go-containerregistry: one stream per layer (to build one module per layer,
// with overlayfs whiteouts), or the whole image flattened into one.
//
// An image is named by a reference:
//
//	oci:PATH[:TAG]              an OCI image layout directory; TAG matches the
//	                            org.opencontainers.image.ref.name annotation
//	docker-archive:FILE[:TAG]   a `docker save` tarball; TAG is repo[:tag]
//	anything else               a registry reference, e.g. debian:bookworm,
//	                            with credentials from the Docker config
//
// Without a TAG a layout or archive must hold exactly one image. Layers are
// streamed from their blobs and decompressed on the fly: nothing is copied to
// disk.
package oci

import (
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"byzantium/modules/entry"
	"byzantium/modules/tarball"
	"byzantium/overlays/whiteout"
)

// ReadCloser is an entry stream that holds resources (open blobs, a
// decompressor, a goroutine): Close it when done, read to the end or not.
type ReadCloser interface {
	entry.Reader
	io.Closer
}

// Image is an opened image. Opening reads manifests and the config only.
type Image struct {
	ref string
	img v1.Image
}

// Open opens the image ref names (see the package documentation). Errors name
// ref.
func Open(ref string) (*Image, error) {
	img, err := resolve(ref)
	if err != nil {
		return nil, fmt.Errorf("oci: open %s: %w", ref, err)
	}
	return &Image{ref: ref, img: verifiedImage{img}}, nil
}

// Ref returns the reference the image was opened with.
func (im *Image) Ref() string { return im.ref }

// Digest returns the digest of the image manifest, "sha256:…", the identity a
// registry or layout gives the image. A docker-archive stores no manifest:
// go-containerregistry computes one, which for uncompressed layers (what
// docker save writes) means gzipping every layer once, in memory.
func (im *Image) Digest() (string, error) {
	h, err := im.img.Digest()
	if err != nil {
		return "", fmt.Errorf("oci: %s: manifest digest: %w", im.ref, err)
	}
	return h.String(), nil
}

// ConfigDigest returns the digest of the image config (Docker's image ID),
// which every source provides without touching the layers.
func (im *Image) ConfigDigest() (string, error) {
	h, err := im.img.ConfigName()
	if err != nil {
		return "", fmt.Errorf("oci: %s: config digest: %w", im.ref, err)
	}
	return h.String(), nil
}

// Layer is one layer of an image, bottom first.
type Layer struct {
	// Index is the layer's position in the image, 0 at the bottom.
	Index int
	ref   string // the image's, for errors
	count int
	layer v1.Layer
}

// Layers returns the image's layers, bottom first.
func (im *Image) Layers() ([]Layer, error) {
	ls, err := im.img.Layers()
	if err != nil {
		return nil, fmt.Errorf("oci: %s: layers: %w", im.ref, err)
	}
	out := make([]Layer, len(ls))
	for i, l := range ls {
		out[i] = Layer{Index: i, ref: im.ref, count: len(ls), layer: l}
	}
	return out, nil
}

func (l Layer) String() string { return fmt.Sprintf("%s layer %d/%d", l.ref, l.Index+1, l.count) }

// Digest returns the digest of the layer blob as the manifest names it
// ("sha256:…"; compressed). For a docker-archive with uncompressed layers it
// is computed by gzipping the layer, as Image.Digest explains.
func (l Layer) Digest() (string, error) {
	h, err := l.layer.Digest()
	if err != nil {
		return "", fmt.Errorf("oci: %s: digest: %w", l, err)
	}
	return h.String(), nil
}

// DiffID returns the digest of the uncompressed layer tar ("sha256:…"), the
// bytes the entry stream is made from, as the image config records it.
func (l Layer) DiffID() (string, error) {
	h, err := l.layer.DiffID()
	if err != nil {
		return "", fmt.Errorf("oci: %s: diff ID: %w", l, err)
	}
	return h.String(), nil
}

// Open returns the layer's entries with OCI whiteouts turned into overlayfs
// ones (see whiteout.FromOCI), ready to become one module. The layer is
// checked against its diff ID as it streams: a layer that does not match
// fails at the last Next with ErrDigest, so a consumer must not keep what it
// wrote from a stream that ended in an error.
func (l Layer) Open() (ReadCloser, error) {
	rc, err := l.layer.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("oci: %s: %w", l, err)
	}
	tr, err := tarball.NewReader(rc, l.String())
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("oci: %w", err)
	}
	src := &source{Reader: tr}
	return &stream{Reader: whiteout.FromOCI(src), src: src, tr: tr, rc: rc, name: l.String()}, nil
}

// Flatten returns the image's files as one stream, whiteouts applied, as
// mutate.Extract computes it: no whiteout entries remain. mutate.Extract
// walks the layers top first, so a hardlink may come before its target; the
// entry stream allows that and the squashfs writer resolves such links at
// Close. A hardlink in a lower layer whose target an upper layer replaced
// points at the upper file in the result, where overlayfs would keep the old
// inode: that is mutate.Extract's choice, and flattened images rarely care.
func (im *Image) Flatten() (ReadCloser, error) {
	name := im.ref + " (flattened)"
	rc := mutate.Extract(im.img)
	tr, err := tarball.NewReader(rc, name)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("oci: %w", err)
	}
	// mutate.Extract reads each layer to its end, so verifiedImage checks
	// every one. It writes the tar trailer before it hands its error to the
	// pipe, though: only the drain at EOF in stream.Next sees the error.
	src := &source{Reader: tr}
	return &stream{Reader: src, src: src, tr: tr, rc: rc, name: name}, nil
}

// source passes on a tarball.Reader and remembers its last error, which
// names the layer already, so that stream names only the errors of filters.
type source struct {
	entry.Reader
	err error
}

func (s *source) Next() (*entry.Header, error) {
	h, err := s.Reader.Next()
	if err != nil {
		s.err = err
	}
	return h, err
}

// stream ties an entry stream to the tar reader and blob under it.
type stream struct {
	entry.Reader
	src     *source
	tr      *tarball.Reader
	rc      io.ReadCloser
	name    string
	drained bool
	err     error // sticky: a failed check must not turn into a clean EOF
}

func (s *stream) Next() (*entry.Header, error) {
	if s.err != nil {
		return nil, s.err
	}
	h, err := s.Reader.Next()
	if err != nil && err != io.EOF && err != s.src.err {
		err = fmt.Errorf("oci: %s: %w", s.name, err)
	}
	if err == io.EOF && !s.drained {
		// The tar reader stops at the end-of-archive blocks; the padding after
		// them must pass through the verifying reader too, which reports a
		// mismatch only at its EOF.
		s.drained = true
		if _, derr := io.Copy(io.Discard, s.rc); derr != nil {
			s.err = fmt.Errorf("%s: %w", s.name, derr)
			return nil, s.err
		}
	}
	return h, err
}

// Close releases the decompressor and the blob; for Flatten it also stops
// mutate.Extract's goroutine, whose next write fails on the closed pipe.
func (s *stream) Close() error {
	return errors.Join(s.tr.Close(), s.rc.Close())
}

package oci

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Transport prefixes of a reference, as skopeo and podman spell them.
const (
	LayoutPrefix  = "oci:"
	ArchivePrefix = "docker-archive:"
)

// refNameAnnotation tags a manifest in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Errors callers branch on.
var (
	// ErrNotFound reports a tag that names no image in a layout or archive.
	ErrNotFound = errors.New("oci: no image with that tag")
	// ErrAmbiguous reports a reference without a tag to a layout or archive
	// that holds more (or fewer) than one image.
	ErrAmbiguous = errors.New("oci: reference does not pick exactly one image")
)

// splitRef splits "PATH[:tag]" at the first colon, as skopeo does for its oci:
// and docker-archive: transports: a docker-archive tag is itself
// "repo:tag", and a path containing a colon cannot be named.
func splitRef(s string) (path, tag string) {
	path, tag, _ = strings.Cut(s, ":")
	return path, tag
}

// resolve opens the v1.Image a reference names, without reading any layer.
func resolve(ref string) (v1.Image, error) {
	if rest, ok := strings.CutPrefix(ref, LayoutPrefix); ok {
		return openLayout(splitRef(rest))
	}
	if rest, ok := strings.CutPrefix(ref, ArchivePrefix); ok {
		return openArchive(splitRef(rest))
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("not oci:PATH, docker-archive:FILE or a registry reference: %w", err)
	}
	// remote.Image only fetches the manifest; layers stream when read.
	img, err := remote.Image(r, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return nil, fmt.Errorf("remote.Image: %w", err)
	}
	return img, nil
}

// openLayout picks the image of an OCI image layout directory by the
// ref.name annotation in its index.json.
func openLayout(dir, tag string) (v1.Image, error) {
	if dir == "" {
		return nil, errors.New("empty layout path")
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("not an OCI image layout: %w", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	var names []string
	var found []int
	for i, d := range m.Manifests {
		n := d.Annotations[refNameAnnotation]
		if n == "" {
			n = d.Digest.String()
		}
		names = append(names, n)
		if tag == "" || d.Annotations[refNameAnnotation] == tag {
			found = append(found, i)
		}
	}
	switch {
	case tag != "" && len(found) == 0:
		return nil, fmt.Errorf("%w %q; the layout has %s", ErrNotFound, tag, choices(names))
	case len(found) != 1:
		return nil, fmt.Errorf("%w: the layout has %s; add :TAG", ErrAmbiguous, choices(names))
	}
	d := m.Manifests[found[0]]
	if d.MediaType.IsIndex() {
		// Picking a platform needs the build's target architecture, which a
		// reference does not carry.
		return nil, fmt.Errorf("%s (%s) is a multi-platform index, which is not supported; copy one platform into a layout",
			names[found[0]], d.Digest)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d.Digest, err)
	}
	return img, nil
}

// openArchive picks the image of a `docker save` tarball by its RepoTags.
// tarball.ImageFromPath reopens the file for every blob it reads and seeks
// through it, so layers stream from the archive and are never copied out.
func openArchive(file, tag string) (v1.Image, error) {
	if file == "" {
		return nil, errors.New("empty archive path")
	}
	if _, err := os.Stat(file); err != nil {
		return nil, err
	}
	opener := func() (io.ReadCloser, error) { return os.Open(file) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("not a docker-archive (docker save) tarball: manifest.json: %w", err)
	}
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	if tag == "" {
		if len(m) != 1 {
			return nil, fmt.Errorf("%w: the archive has %d images tagged %s; add :TAG", ErrAmbiguous, len(m), choices(tags))
		}
		img, err := tarball.Image(opener, nil)
		if err != nil {
			return nil, fmt.Errorf("tarball.Image: %w", err)
		}
		return img, nil
	}
	t, err := name.NewTag(tag)
	if err != nil {
		return nil, fmt.Errorf("tag %q: %w", tag, err)
	}
	if !slices.ContainsFunc(tags, func(s string) bool {
		rt, err := name.NewTag(s)
		return err == nil && rt.Name() == t.Name()
	}) {
		return nil, fmt.Errorf("%w %q; the archive has %s", ErrNotFound, tag, choices(tags))
	}
	img, err := tarball.Image(opener, &t)
	if err != nil {
		return nil, fmt.Errorf("tarball.Image: %w", err)
	}
	return img, nil
}

// choices lists names for an error message.
func choices(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

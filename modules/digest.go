package modules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/modules/npm"
	"byzantium/modules/oci"
)

// Digest returns the sha256 a module built from ref with the same epoch
// (SOURCE_DATE_EPOCH, or nil) would record for it in its manifest, without
// building anything: the bytes of a file source, the entry stream of a
// directory (mtimes clamped to the epoch), the config of an OCI image, the
// lock and package.json of an npm application.
// Builders key their caches on it, so a second build with unchanged inputs
// compresses nothing.
func Digest(ref string, epoch *time.Time) (string, error) {
	src, err := ParseSource(ref)
	if err != nil {
		return "", err
	}
	switch src.Kind {
	case KindTar, KindDeb, KindModule:
		f, err := os.Open(ref)
		if err != nil {
			return "", err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return "", fmt.Errorf("%s: %w", ref, err)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	case KindDir:
		r, err := hostfs.NewReader(ref)
		if err != nil {
			return "", err
		}
		defer r.Close()
		var in entry.Reader = r
		if epoch != nil {
			in = entry.ClampModTime(r, *epoch)
		}
		h := sha256.New()
		hr := entry.Hash(in, h)
		for {
			_, err := hr.Next()
			if err == io.EOF {
				return hex.EncodeToString(h.Sum(nil)), nil
			}
			if err != nil {
				return "", fmt.Errorf("%s: %w", ref, err)
			}
			if _, err := io.Copy(io.Discard, hr); err != nil {
				return "", fmt.Errorf("%s: %w", ref, err)
			}
		}
	case KindNPM:
		// The lock and package.json decide the layout: the tarballs are
		// pinned by the lock's integrity, so the cache need not be read.
		app, err := npm.LoadApp(strings.TrimPrefix(ref, "npm:"))
		if err != nil {
			return "", err
		}
		return app.Digest(), nil
	case KindOCI:
		img, err := oci.Open(ref)
		if err != nil {
			return "", err
		}
		d, err := img.ConfigDigest()
		if err != nil {
			return "", err
		}
		return strings.TrimPrefix(d, "sha256:"), nil
	}
	return "", fmt.Errorf("%w: %s: kind %q", ErrSource, ref, src.Kind)
}

package meshcfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"byzantium/runtime/nodeapi"
)

// ImageFile is where, under the node's root, the build writes the spec's
// mesh: section (builder, in the module it makes for the spec's
// settings). byzd reads it at boot: its Settings are the node's until
// the panel or the API saves others in the state folder.
const ImageFile = "etc/byzantium/mesh.json"

// maxImageFile bounds what ReadImage reads: a few short strings.
const maxImageFile = 64 << 10

// Image is the spec's mesh section as the node reads it.
type Image struct {
	// Settings are the mesh's defaults, the Internet check's targets
	// among them (none means the gateway's own); an image never holds a
	// key.
	Settings nodeapi.MeshSettings `json:"settings"`
}

// DefaultImage is an image built from a spec without a mesh: section.
func DefaultImage() Image { return Image{Settings: Defaults()} }

// Validate checks the settings and the check targets; an image may not
// hold a mesh key (it would sit in clear on every stick).
func (im Image) Validate() error {
	errs := []error{ValidateSettings(im.Settings)}
	if im.Settings.Key != "" || im.Settings.KeepKey || im.Settings.Keyed {
		errs = append(errs, &FieldError{Field: "key", Err: invalid("an image holds no mesh key: set it on the node (panel, API, byz node mesh set)")})
	}
	return errors.Join(errs...)
}

// Marshal is the file the build writes: indented JSON and a newline.
func (im Image) Marshal() ([]byte, error) {
	if err := im.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(im, "", "  ")
	return append(b, '\n'), err
}

// ReadImage reads root/ImageFile. A node built before the mesh existed
// has none: DefaultImage and no error. A file that is not a regular file
// of at most 64 KiB, not JSON with only Image's fields, or not valid
// returns DefaultImage and the error, for byzd to log.
func ReadImage(root string) (Image, error) {
	path := filepath.Join(root, ImageFile)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultImage(), nil
	}
	if err != nil {
		return DefaultImage(), err
	}
	if !fi.Mode().IsRegular() {
		return DefaultImage(), fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return DefaultImage(), err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxImageFile+1))
	if err != nil {
		return DefaultImage(), fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxImageFile {
		return DefaultImage(), fmt.Errorf("%s is larger than %d KiB", path, maxImageFile>>10)
	}
	var im Image
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&im); err != nil {
		return DefaultImage(), fmt.Errorf("%s: %w", path, err)
	}
	if err := im.Validate(); err != nil {
		return DefaultImage(), fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

package daemon

import (
	"errors"
	"net/http"
	"path/filepath"

	"byzantium/overlays"
	"byzantium/runtime/luks2"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/savedat"
	"byzantium/runtime/savedat/mkfs"
)

// httpError is an error with the status an API answer carries.
type httpError struct {
	status int
	err    error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

// CreateSaveDat makes byzantium/changes/save.dat on the boot media, for
// the next boot (savedat/mkfs.CreateOnMedia), its keyslot's memory cost
// within what this node can unlock.
func CreateSaveDat(root string, req nodeapi.SaveDatRequest) (nodeapi.SaveDatResult, error) {
	if req.SizeBytes <= 0 {
		return nodeapi.SaveDatResult{}, &httpError{http.StatusBadRequest, errors.New("size_bytes: give the save.dat's size (e.g. 536870912 for 512 MiB)")}
	}
	media := filepath.Join(root, overlays.MediaDir)
	if !isMountPoint(media) {
		return nodeapi.SaveDatResult{}, &httpError{http.StatusConflict, errors.New("the boot media is not mounted (booted with copy2ram?): make the save.dat on another machine with byz persist create --media")}
	}
	opts := mkfs.Options{Size: req.SizeBytes}
	res := nodeapi.SaveDatResult{Path: overlays.DefaultSaveDat, SizeBytes: req.SizeBytes}
	if req.Passphrase != "" {
		opts.Passphrase = []byte(req.Passphrase)
		defer clear(opts.Passphrase)
		opts.KDF = luks2.DefaultKDF
		if req.KDFTime > 0 {
			opts.KDF.Time = req.KDFTime
		}
		opts.KDF.Memory = luks2.LocalKDFMemory(req.KDFMemoryKiB)
		res.Encrypted, res.KDFMemKiB = true, opts.KDF.Memory
	}
	err := mkfs.CreateOnMedia(media, overlays.DefaultSaveDat, opts)
	switch {
	case errors.Is(err, savedat.ErrBadOption):
		return nodeapi.SaveDatResult{}, &httpError{http.StatusBadRequest, err}
	case errors.Is(err, mkfs.ErrMediaRefused):
		return nodeapi.SaveDatResult{}, &httpError{http.StatusConflict, err}
	case errors.Is(err, savedat.ErrNoSpace):
		return nodeapi.SaveDatResult{}, &httpError{http.StatusInsufficientStorage, err}
	case err != nil:
		return nodeapi.SaveDatResult{}, err
	}
	res.Note = "the save.dat is used from the next boot on"
	return res, nil
}

// Package cloneapi is what a clone is asked to do and what it reports:
// the Request `byz clone --request` reads, the Event lines
// `--progress=json` prints and the Result of the last one. It needs only
// the standard library, so byzd (which runs byz clone as a child and must
// not link the image writers) speaks the same types as image/clone.
package cloneapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrBadRequest reports a Request that cannot make a clone, whatever
// the source and target: `byz clone` exits with status 2 (usage) on it.
var ErrBadRequest = errors.New("clone: bad request")

// badRequest is an error that is ErrBadRequest without saying so in its
// text: the message names what is wrong, as a usage error does.
type badRequest struct{ error }

func (e badRequest) Is(target error) bool { return target == ErrBadRequest }
func (e badRequest) Unwrap() error        { return e.error }

// BadRequest makes err an ErrBadRequest, keeping its message.
func BadRequest(err error) error { return badRequest{err} }

// Request is one clone: `byz clone`'s flags as JSON. The zero value of
// every field but Target is the command's default.
type Request struct {
	// Target is the block device ("/dev/sdb") or image file to write.
	Target string `json:"target"`
	// From is the source: a media folder, a USB image or stick; "" is
	// the running node's boot media.
	From string `json:"from,omitempty"`
	// Modules names the optional modules to take: null takes them all,
	// [] none. (No omitempty: an empty list must survive the trip.)
	Modules []string `json:"modules"`
	// SaveSize makes a fresh save.dat of that many bytes.
	SaveSize int64 `json:"save_size,omitempty"`
	// Encrypt makes the save.dat LUKS2 under a new passphrase:
	// Passphrase, or, when that is "", the one the UI asks for.
	Encrypt    bool   `json:"encrypt,omitempty"`
	Passphrase string `json:"passphrase,omitempty"`
	// KDFMemoryKiB and KDFTime are argon2id's costs (0: the default, its
	// memory at most half the RAM of the node that clones itself).
	KDFMemoryKiB int `json:"kdf_memory_kib,omitempty"`
	KDFTime      int `json:"kdf_time,omitempty"`
	// WithState carries the running node's changes along, State an
	// upper folder instead; WithSecrets keeps identity and secrets in.
	WithState   bool   `json:"with_state,omitempty"`
	State       string `json:"state,omitempty"`
	WithSecrets bool   `json:"with_secrets,omitempty"`
	// Size is an image file target's size (0: the source's, or the
	// smallest that holds the clone).
	Size int64 `json:"size,omitempty"`
	// Force writes a disk that is not removable and replaces an existing
	// image file.
	Force bool `json:"force,omitempty"`
	// Plan prints what would be written and writes nothing.
	Plan bool `json:"plan,omitempty"`
}

// Check refuses a request no source or target could make a clone of,
// with an ErrBadRequest naming the flag at fault.
func (r *Request) Check() error {
	bad := func(format string, a ...any) error { return BadRequest(fmt.Errorf(format, a...)) }
	switch {
	case r.Target == "":
		return bad("clone: name a target")
	case r.SaveSize < 0, r.Size < 0, r.KDFMemoryKiB < 0, r.KDFTime < 0:
		return bad("clone: sizes and KDF costs are not negative")
	case (r.Encrypt || r.Passphrase != "") && r.SaveSize == 0:
		return bad("clone: --encrypt and --passphrase-file need --save-size")
	case r.Passphrase != "" && !r.Encrypt:
		return bad("clone: --passphrase-file needs --encrypt")
	case (r.KDFMemoryKiB != 0 || r.KDFTime != 0) && !r.Encrypt:
		return bad("clone: --kdf-memory and --kdf-time need --encrypt")
	case r.WithSecrets && !r.WithState && r.State == "":
		return bad("clone: --with-secrets needs --with-state")
	case r.WithState && r.From != "" && r.State == "":
		return bad("clone: --with-state takes the running node's changes; with --from, name an upper folder with --state DIR")
	}
	return nil
}

// Decode reads one Request from r, strictly: an unknown field, a second
// value or a request Check refuses is an ErrBadRequest.
func Decode(r io.Reader) (Request, error) {
	var req Request
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, BadRequest(fmt.Errorf("clone: request: %w", err))
	}
	if dec.More() {
		return Request{}, BadRequest(errors.New("clone: request: more than one JSON value"))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, BadRequest(errors.New("clone: request: data after the JSON value"))
	}
	if err := req.Check(); err != nil {
		return Request{}, err
	}
	return req, nil
}

// Event is one line of `byz clone --progress=json`: the phase
// ("prepare": the state module and the save.dat's file system are made;
// "write": files are written; "verify": they are read back from the
// target; "finish": the partition table is written), the bytes done of
// the phase's total, the rate since the phase began, the seconds left at
// that rate and the file at hand. The last line's phase is "done", with
// the Result, or "error", with the Error.
type Event struct {
	Phase string  `json:"phase"`
	Bytes int64   `json:"bytes"`
	Total int64   `json:"total"`
	Rate  float64 `json:"rate"`
	ETA   float64 `json:"eta_s"`
	File  string  `json:"file,omitempty"`
	Error string  `json:"error,omitempty"`
	// Result's fields sit beside the phase's on a "done" line (its bytes
	// are the event's), with the seconds writing and verifying took.
	*Result
	WriteS  float64 `json:"write_s,omitempty"`
	VerifyS float64 `json:"verify_s,omitempty"`
}

// Done is the last event of a clone that succeeded.
func Done(res *Result) Event {
	return Event{Phase: "done", Bytes: res.Bytes, Total: res.Bytes, Result: res,
		WriteS: res.Write.Seconds(), VerifyS: res.Verify.Seconds()}
}

// Failed is the last event of a clone that failed.
func Failed(err error) Event { return Event{Phase: "error", Error: err.Error()} }

// Result describes a finished clone.
type Result struct {
	Target   string `json:"target"`
	Size     int64  `json:"size"`      // of the target
	SourceID string `json:"source_id"` // the source's media ID
	MediaID  string `json:"media_id"`  // the clone's
	DiskGUID string `json:"disk_guid"`
	PartGUID string `json:"part_guid"`
	VolumeID string `json:"volume_id"` // as blkid shows it, "XXXX-XXXX"
	// Bytes is what was written as files; Files how many.
	Bytes int64 `json:"bytes"`
	Files int   `json:"files"`
	// StateModule is the file the node's changes went to ("" none);
	// StateInSaveDat says they went into the encrypted save.dat instead.
	StateModule    string `json:"state_module,omitempty"`
	StateInSaveDat bool   `json:"state_in_save_dat,omitempty"`
	// Free is what the clone leaves free on its FAT partition, and
	// SaveDatRoom the largest save.dat that fits there (0: none); SaveDat
	// says the clone has one already. Unpartitioned is what is left of a
	// disk larger than FAT32's 2 TiB.
	Free          int64 `json:"free"`
	SaveDatRoom   int64 `json:"save_dat_room"`
	SaveDat       bool  `json:"save_dat"`
	Unpartitioned int64 `json:"unpartitioned,omitempty"`
	// Unlisted are the modules that went along without the source's
	// manifest vouching for them (added by hand), marked so in the
	// clone's.
	Unlisted []string `json:"unlisted,omitempty"`
	// Write and Verify are how long writing (sync included) and reading
	// back took.
	Write  time.Duration `json:"-"`
	Verify time.Duration `json:"-"`
}

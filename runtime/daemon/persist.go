package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"byzantium/overlays"
	"byzantium/runtime/changes"
	"byzantium/runtime/luks2"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/savedat"
	"byzantium/runtime/savedat/mkfs"

	"golang.org/x/sys/unix"
)

// ErrNotExitMode is returned by SaveChanges when the node's changes are
// not kept in RAM: they already reach the store as they are made.
var ErrNotExitMode = errors.New("nothing to save: the node was not booted with changes=EXIT")

// saveMu serializes saves within byzd (changes.Save also locks the store
// against other processes).
var saveMu sync.Mutex

// SaveChanges copies the changes kept in RAM under changes=EXIT: to their
// store, and records the result under root. byzd calls it for the API and
// byz persist save calls it when byzd does not answer.
func SaveChanges(root string) (nodeapi.SaveResult, error) {
	saveMu.Lock()
	defer saveMu.Unlock()
	p := ReadPersistence(root)
	if p == nil || p.Mode != overlays.ModeExit {
		mode := "unknown (no report from byz-init)"
		if p != nil {
			mode = string(p.Mode)
		}
		return nodeapi.SaveResult{}, fmt.Errorf("%w (the persistence mode is %s)", ErrNotExitMode, mode)
	}
	start := time.Now()
	st, err := changes.Save(filepath.Join(root, overlays.UpperDir), filepath.Join(root, overlays.StoreDir))
	r := nodeapi.SaveResult{Time: start.UTC().Truncate(time.Second), Entries: st.Entries, Copied: st.Copied, Removed: st.Removed,
		Bytes: st.Bytes, Seconds: time.Since(start).Seconds()}
	if err != nil {
		r.Error = err.Error()
	}
	if b, jerr := json.Marshal(r); jerr == nil {
		os.WriteFile(filepath.Join(root, overlays.LastSaveJSON), append(b, '\n'), 0o644)
	}
	return r, err
}

// readLastSave returns the last save's account, or nil.
func readLastSave(root string) *nodeapi.SaveResult {
	b, err := os.ReadFile(filepath.Join(root, overlays.LastSaveJSON))
	if err != nil {
		return nil
	}
	var r nodeapi.SaveResult
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &r
}

// httpError is an error with the status an API answer carries.
type httpError struct {
	status int
	err    error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

// CreateSaveDat makes byzantium/changes/save.dat on the boot media, for
// the next boot: the media is made writable for the time it takes.
func CreateSaveDat(root string, req nodeapi.SaveDatRequest) (nodeapi.SaveDatResult, error) {
	bad := func(format string, a ...any) (nodeapi.SaveDatResult, error) {
		return nodeapi.SaveDatResult{}, &httpError{http.StatusBadRequest, fmt.Errorf(format, a...)}
	}
	if req.SizeBytes <= 0 {
		return bad("size_bytes: give the save.dat's size (e.g. 536870912 for 512 MiB)")
	}
	media := filepath.Join(root, overlays.MediaDir)
	if !isMountPoint(media) {
		return nodeapi.SaveDatResult{}, &httpError{http.StatusConflict, errors.New("the boot media is not mounted (booted with copy2ram?): make the save.dat on another machine with byz persist create --media")}
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(media, &sfs); err != nil {
		return nodeapi.SaveDatResult{}, err
	}
	if sfs.Type == unix.ISOFS_SUPER_MAGIC {
		return nodeapi.SaveDatResult{}, &httpError{http.StatusConflict, errors.New("the boot media is a CD image, which cannot be written: boot from a USB stick, or put the save.dat on a partition (changes=)")}
	}
	path := filepath.Join(media, overlays.DefaultSaveDat)
	if _, err := os.Lstat(path); err == nil {
		return nodeapi.SaveDatResult{}, &httpError{http.StatusConflict, fmt.Errorf("%s exists on the media: a save.dat is never overwritten (use byz persist resize to grow it)", overlays.DefaultSaveDat)}
	}
	// The free space of a FAT media: the save.dat is written in full.
	if free := int64(sfs.Bavail) * sfs.Bsize; free < req.SizeBytes+(1<<20) {
		return nodeapi.SaveDatResult{}, &httpError{http.StatusInsufficientStorage, fmt.Errorf("the media has %d MiB free, and a %d MiB save.dat needs %d MiB: choose a smaller size", free>>20, req.SizeBytes>>20, req.SizeBytes>>20+1)}
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
		opts.KDF.Memory = kdfMemory(req.KDFMemoryKiB)
		res.Encrypted, res.KDFMemKiB = true, opts.KDF.Memory
	}
	// byz-init mounted the media read-only unless a save.dat is in use.
	readOnly := sfs.Flags&unix.ST_RDONLY != 0
	if readOnly {
		if err := unix.Mount("", media, "", unix.MS_REMOUNT, ""); err != nil {
			return nodeapi.SaveDatResult{}, &httpError{http.StatusConflict, fmt.Errorf("making the media writable: %w (is the stick write-protected?)", err)}
		}
		defer unix.Mount("", media, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	if err := mkfs.Create(path, opts); err != nil {
		if errors.Is(err, savedat.ErrBadOption) {
			return nodeapi.SaveDatResult{}, &httpError{http.StatusBadRequest, err}
		}
		return nodeapi.SaveDatResult{}, err
	}
	unix.Sync()
	res.Note = "the save.dat is used from the next boot on"
	return res, nil
}

// kdfMemory is the argon2id memory for a new keyslot on this node: asked
// (KiB) or the default, capped at half the RAM as cryptsetup does, since
// the node must be able to unlock it too.
func kdfMemory(asked int) int {
	m := asked
	if m <= 0 {
		m = luks2.DefaultKDF.Memory
	}
	if total := memTotalKiB(); total > 0 && m > total/2 {
		m = total / 2
	}
	return m
}

func memTotalKiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}

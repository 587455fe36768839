package changes

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"byzantium/overlays"
)

// Under changes=EXIT: the node's changes live in RAM and reach the store
// only when saved, on demand or at shutdown. SaveLive is that save with
// its account, which the node's status shows.

// SaveReport is the account of one save of the live changes.
type SaveReport = overlays.SaveReport

// liveMu serializes saves within a process (Save also locks the store
// against other processes) and the writing of their reports.
var liveMu sync.Mutex

// SaveLive saves the live upper layer into the store mounted at store
// (Save) and writes the account of it, failed or not, to report as JSON.
// The report is best-effort: it is the save's error that is returned.
func SaveLive(upper, store, report string) (SaveReport, error) {
	liveMu.Lock()
	defer liveMu.Unlock()
	start := time.Now()
	st, err := Save(upper, store)
	r := SaveReport{Time: start.UTC().Truncate(time.Second), Entries: st.Entries, Copied: st.Copied, Removed: st.Removed,
		Bytes: st.Bytes, Seconds: time.Since(start).Seconds()}
	if err != nil {
		r.Error = err.Error()
	}
	if b, jerr := json.Marshal(r); jerr == nil {
		os.WriteFile(report, append(b, '\n'), 0o644)
	}
	return r, err
}

// ReadSaveReport reads the account SaveLive wrote at path, or nil.
func ReadSaveReport(path string) *SaveReport {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var r SaveReport
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &r
}

// ErrNotExitMode is returned by SaveNode when the node's changes are not
// kept in RAM: they already reach the store as they are made.
var ErrNotExitMode = errors.New("nothing to save: the node was not booted with changes=EXIT")

// SaveNode saves the changes of the node whose root is root, as byz-init
// left them (overlays' paths), if it runs with changes=EXIT:. byzd calls
// it for its API, and byz persist save when byzd does not answer.
func SaveNode(root string) (SaveReport, error) {
	p, err := overlays.ReadPersistence(root)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return SaveReport{}, fmt.Errorf("%w (the persistence mode is unknown: no report from byz-init)", ErrNotExitMode)
	case err != nil:
		return SaveReport{}, fmt.Errorf("%w (the persistence mode is unknown: %v)", ErrNotExitMode, err)
	case p.Mode != overlays.ModeExit:
		return SaveReport{}, fmt.Errorf("%w (the persistence mode is %s)", ErrNotExitMode, p.Mode)
	}
	return SaveLive(filepath.Join(root, overlays.UpperDir), filepath.Join(root, overlays.StoreDir), filepath.Join(root, overlays.LastSaveJSON))
}

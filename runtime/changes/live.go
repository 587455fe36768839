package changes

import (
	"encoding/json"
	"os"
	"sync"
	"time"
)

// Under changes=EXIT: the node's changes live in RAM and reach the store
// only when saved, on demand or at shutdown. SaveLive is that save with
// its account, which the node's status shows.

// SaveReport is the account of one save of the live changes.
type SaveReport struct {
	Time    time.Time `json:"time"`
	Entries int       `json:"entries"`
	Copied  int       `json:"copied"`
	Removed int       `json:"removed"`
	Bytes   int64     `json:"bytes"`
	Seconds float64   `json:"seconds"`
	Error   string    `json:"error,omitempty"`
}

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

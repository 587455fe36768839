package changes

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSaveLive: a save copies the live layer and leaves its account,
// which ReadSaveReport reads back; a failed save leaves its error there.
func TestSaveLive(t *testing.T) {
	dir := t.TempDir()
	upper, store, report := filepath.Join(dir, "upper"), filepath.Join(dir, "store"), filepath.Join(dir, "last-save.json")
	mustDo(t, os.MkdirAll(filepath.Join(upper, "root"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(upper, "root/notes.txt"), []byte("meet at the library\n"), 0o644))
	mustDo(t, os.Mkdir(store, 0o755))
	if r := ReadSaveReport(report); r != nil {
		t.Errorf("a report before any save: %+v", r)
	}
	r, err := SaveLive(upper, store, report)
	if err != nil || r.Copied != 2 || r.Error != "" || r.Time.IsZero() {
		t.Fatalf("SaveLive = %+v, %v", r, err)
	}
	if b, err := os.ReadFile(filepath.Join(store, UpperDir, "root/notes.txt")); err != nil || string(b) != "meet at the library\n" {
		t.Errorf("the store after a save: %q, %v", b, err)
	}
	if got := ReadSaveReport(report); got == nil || *got != r {
		t.Errorf("ReadSaveReport = %+v, want %+v", got, r)
	}

	r, err = SaveLive(upper, filepath.Join(dir, "no-store"), report)
	if err == nil || r.Error != err.Error() {
		t.Fatalf("SaveLive to no store = %+v, %v", r, err)
	}
	if got := ReadSaveReport(report); got == nil || got.Error != err.Error() {
		t.Errorf("the report of a failed save: %+v", got)
	}
	mustDo(t, os.WriteFile(report, []byte("{"), 0o644))
	if got := ReadSaveReport(report); got != nil {
		t.Errorf("a torn report read as %+v", got)
	}
}

package changes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/overlays"
)

// TestSaveNodeRefuses: a node not booted with changes=EXIT: (or whose
// report is missing or unreadable) has nothing to save, and SaveNode
// says which mode it found rather than touching any store.
func TestSaveNodeRefuses(t *testing.T) {
	tests := []struct {
		name, report, says string
	}{
		{"no report", "", "no report from byz-init"},
		{"ram", `{"mode":"ram","encrypted":false}`, "mode is ram"},
		{"savedat", `{"mode":"savedat","store":"byzantium/changes/save.dat","encrypted":true}`, "mode is savedat"},
		{"garbage", `{"mode":`, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.report != "" {
				p := filepath.Join(root, overlays.PersistenceJSON)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(tt.report), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := SaveNode(root)
			if !errors.Is(err, ErrNotExitMode) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("SaveNode = %v, want ErrNotExitMode saying %q", err, tt.says)
			}
			if _, err := os.Stat(filepath.Join(root, overlays.LastSaveJSON)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused save wrote its report: %v", err)
			}
		})
	}
}

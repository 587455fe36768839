package overlays

import (
	"encoding/json"
	"testing"
	"time"
)

// TestReportJSON pins the reports byte for byte: byz-init of one release
// writes them and byzd (and its API's clients) of another may read them.
func TestReportJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"layer", Layer{Name: "busybox", File: "byzantium/base/000-busybox.xzm", Layer: "/run/byz/layers/000-000-busybox"},
			`{"name":"busybox","file":"byzantium/base/000-busybox.xzm","layer":"/run/byz/layers/000-000-busybox"}`},
		{"ram", Persistence{Mode: ModeRAM}, `{"mode":"ram","encrypted":false}`},
		{"fresh", Persistence{Mode: ModeFresh}, `{"mode":"fresh","encrypted":false}`},
		{"savedat", Persistence{Mode: ModeSaveDat, Store: DefaultSaveDat, Encrypted: true},
			`{"mode":"savedat","store":"byzantium/changes/save.dat","encrypted":true}`},
		{"device", Persistence{Mode: ModeDevice, Store: "LABEL=keep"}, `{"mode":"device","store":"LABEL=keep","encrypted":false}`},
		{"dir", Persistence{Mode: ModeDir, Store: "byzantium/changes"}, `{"mode":"dir","store":"byzantium/changes","encrypted":false}`},
		{"exit", Persistence{Mode: ModeExit, Store: "/dev/sdb2", Backing: ModeDevice},
			`{"mode":"exit","store":"/dev/sdb2","encrypted":false,"backing":"device"}`},
		{"warning", Persistence{Mode: ModeRAM, Store: "byzantium/changes/save.dat", Encrypted: true, Warning: "wrong passphrase"},
			`{"mode":"ram","store":"byzantium/changes/save.dat","encrypted":true,"warning":"wrong passphrase"}`},
		{"unknown", Persistence{Mode: ModeUnknown}, `{"mode":"unknown","encrypted":false}`},
		{"save", SaveReport{Time: time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC), Entries: 12, Copied: 3, Removed: 1, Bytes: 4096, Seconds: 0.5},
			`{"time":"2026-12-03T06:00:00Z","entries":12,"copied":3,"removed":1,"bytes":4096,"seconds":0.5}`},
		{"failed save", SaveReport{Time: time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC), Error: "store full"},
			`{"time":"2026-12-03T06:00:00Z","entries":0,"copied":0,"removed":0,"bytes":0,"seconds":0,"error":"store full"}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s: %s\nwant %s", tc.name, b, tc.want)
		}
		switch v := tc.v.(type) {
		case Persistence:
			var back Persistence
			if err := json.Unmarshal(b, &back); err != nil || back != v {
				t.Errorf("%s: read back %+v, %v", tc.name, back, err)
			}
		case Layer:
			var back Layer
			if err := json.Unmarshal(b, &back); err != nil || back != v {
				t.Errorf("%s: read back %+v, %v", tc.name, back, err)
			}
		}
	}
}

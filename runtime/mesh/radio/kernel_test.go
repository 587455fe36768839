package radio

import (
	"errors"
	"os"
	"testing"
)

// The real kernel, read-only: with cfg80211 the split dump must come back
// parsed (every radio named, with interface types); without it (this
// host) Open says so with ErrNoNL80211. Either way nothing is changed.
func TestKernelWiphys(t *testing.T) {
	_, statErr := os.Stat("/sys/module/cfg80211")
	c, err := Open()
	if statErr != nil {
		if !errors.Is(err, ErrNoNL80211) {
			t.Fatalf("no cfg80211 here, but Open() = %v, want ErrNoNL80211", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("cfg80211 is loaded, but Open() = %v", err)
	}
	caps, err := c.Wiphys("")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range caps {
		if w.Name == "" || len(w.Iftypes) == 0 {
			t.Errorf("wiphy %d: name %q, iftypes %v", w.Wiphy, w.Name, w.Iftypes)
		}
		mode, reason := ChooseMode(w, Settings{SSID: "Byzantium", Channel: 1})
		t.Logf("%s (%s): %s: %s", w.Name, w.Driver, mode, reason)
	}
}

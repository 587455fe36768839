package radio

import (
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/wiphy-*.hex from the fixtures")

// fixtureFiles are the recorded cards as files, for the packages that
// cannot reach this package's test fixtures (the mesh manager's radio
// tests read them): testdata/wiphy-DRIVER.hex holds one split-dump message
// a line, in hex, and the driver's name is the file's. hwsim's file is
// named for its driver, which its fixture leaves empty (sysfs gives it).
var fixtureFiles = map[string]wiphyFixture{
	"ath9k": fixAth9k, "iwlwifi": fixIwlwifi, "mt7921e": fixMt7921, "brcmfmac": fixBrcmfmac, "mac80211_hwsim": fixHwsim,
}

func fixtureFileText(f wiphyFixture) string {
	var b strings.Builder
	for _, m := range f.messages(0) {
		b.WriteString(hex.EncodeToString(m))
		b.WriteByte('\n')
	}
	return b.String()
}

// TestFixtureFiles checks that testdata holds exactly the fixtures'
// dumps (go test -run TestFixtureFiles -update rewrites them).
func TestFixtureFiles(t *testing.T) {
	for driver, f := range fixtureFiles {
		p := filepath.Join("testdata", "wiphy-"+driver+".hex")
		want := fixtureFileText(f)
		if *update {
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (go test -run TestFixtureFiles -update writes it)", err)
		}
		if string(got) != want {
			t.Errorf("%s differs from the %s fixture: go test -run TestFixtureFiles -update", p, driver)
		}
	}
}

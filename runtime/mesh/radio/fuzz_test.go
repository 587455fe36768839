package radio

import "testing"

// FuzzParseWiphyDump feeds one or two arbitrary messages to the parser: a
// driver can report odd things, and the parser must refuse them, never
// panic, and keep within its bounds.
func FuzzParseWiphyDump(f *testing.F) {
	for _, fix := range []wiphyFixture{fixAth9k, fixBrcmfmac, fixHwsim} {
		for _, m := range fix.messages(1) {
			f.Add(m, []byte{})
		}
	}
	f.Add([]byte{cmdNewWiphy, 1, 0, 0, 8, 0, 1, 0, 0, 0, 0, 0}, []byte{cmdNewWiphy, 1, 0, 0, 4, 0, 0x20, 0x80})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		caps, err := ParseWiphyDump([][]byte{a, b})
		if err != nil {
			return
		}
		if len(caps) > 2 {
			t.Fatalf("%d wiphys from 2 messages", len(caps))
		}
		for _, c := range caps {
			if len(c.Freqs) > maxFreqs || len(c.Combinations) > maxCombinations || len(c.Iftypes) > iftypeLimit || len(c.ExtFeatures) > maxExtFeatureLen {
				t.Fatalf("bounds exceeded: %d freqs, %d combinations, %d iftypes, %d ext bytes", len(c.Freqs), len(c.Combinations), len(c.Iftypes), len(c.ExtFeatures))
			}
			// A parsed card must be usable by ChooseMode.
			ChooseMode(c, Settings{SSID: "x", Channel: 1})
		}
	})
}

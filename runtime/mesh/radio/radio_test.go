package radio

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestChooseModeRecordedCards(t *testing.T) {
	open6 := Settings{SSID: "Byzantium", Channel: 6}
	keyed6 := Settings{SSID: "Byzantium", Channel: 6, Keyed: true}
	tests := []struct {
		card     string
		fix      wiphyFixture
		s        Settings
		want     Mode
		contains []string
	}{
		{"ath9k", fixAth9k, open6, ModeMeshPoint, []string{"802.11s mesh point on channel 6 (2437 MHz)", "forwarding off"}},
		{"ath9k keyed", fixAth9k, keyed6, ModeMeshPoint, []string{"SAE (wpa_supplicant)"}},
		{"ath9k 5 GHz", fixAth9k, Settings{SSID: "Byzantium", Channel: 36}, ModeMeshPoint, []string{"channel 36 (5180 MHz)"}},
		{"ath9k DFS channel", fixAth9k, Settings{SSID: "Byzantium", Channel: 100}, ModeNone, []string{"channel 100 (5500 MHz) needs radar detection (DFS)"}},
		{"ath9k disabled channel", fixAth9k, Settings{SSID: "Byzantium", Channel: 149}, ModeNone, []string{"disabled on this card"}},
		{"iwlwifi", fixIwlwifi, open6, ModeIBSS, []string{"no mesh point: ad-hoc (IBSS) on channel 6 (2437 MHz), BSSID " + IBSSBSSID("Byzantium", 6).String()}},
		{"iwlwifi keyed", fixIwlwifi, keyed6, ModeIBSS, []string{"protects routing only"}},
		{"iwlwifi 5 GHz no-IR", fixIwlwifi, Settings{SSID: "Byzantium", Channel: 36}, ModeNone, []string{"no-IR"}},
		{"mt7921", fixMt7921, open6, ModeNone, []string{"this card offers neither mesh point nor ad-hoc (access point and client only)"}},
		{"brcmfmac", fixBrcmfmac, open6, ModeIBSS, []string{"ad-hoc (IBSS)", "brcmfmac ignores a fixed BSSID"}},
		{"brcmfmac 5 GHz on a 2.4 GHz card", fixBrcmfmac, Settings{SSID: "Byzantium", Channel: 36}, ModeNone, []string{"channel 36 (5180 MHz) is not one this card offers"}},
		{"hwsim", fixHwsim, open6, ModeMeshPoint, nil},
		{"hwsim keyed", fixHwsim, keyed6, ModeMeshPoint, []string{"SAE"}},
		{"hwsim world regdomain channel 12", fixHwsim, Settings{SSID: "Byzantium", Channel: 12}, ModeNone, []string{"no-IR"}},
		{"hwsim world regdomain 5 GHz", fixHwsim, Settings{SSID: "Byzantium", Channel: 36}, ModeNone, []string{"no-IR"}},
		{"bad channel", fixAth9k, Settings{SSID: "Byzantium", Channel: 14}, ModeNone, []string{"invalid wifi channel: 14"}},
		{"bad SSID", fixAth9k, Settings{SSID: "", Channel: 6}, ModeNone, []string{"invalid SSID: empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.card, func(t *testing.T) {
			caps, err := tt.fix.capabilities()
			if err != nil {
				t.Fatalf("parse the recorded dump: %v", err)
			}
			mode, reason := ChooseMode(caps, tt.s)
			if mode != tt.want {
				t.Errorf("ChooseMode(%s, %+v) = %q (%s), want %q", tt.card, tt.s, mode, reason, tt.want)
			}
			if reason == "" {
				t.Errorf("ChooseMode(%s): empty reason", tt.card)
			}
			for _, c := range tt.contains {
				if !strings.Contains(reason, c) {
					t.Errorf("ChooseMode(%s) reason %q, want it to contain %q", tt.card, reason, c)
				}
			}
		})
	}
}

// The parsed fixtures must match what went in: iftypes, combinations,
// features, every frequency with its flags, across the split messages.
func TestParseWiphyDumpRoundTrip(t *testing.T) {
	for _, f := range []wiphyFixture{fixAth9k, fixIwlwifi, fixMt7921, fixBrcmfmac, fixHwsim} {
		t.Run(f.driver+f.name, func(t *testing.T) {
			msgs := f.messages(3)
			if len(msgs) < 4 {
				t.Fatalf("fixture makes %d messages, want a split dump", len(msgs))
			}
			caps, err := ParseWiphyDump(msgs)
			if err != nil {
				t.Fatal(err)
			}
			if len(caps) != 1 {
				t.Fatalf("got %d wiphys, want 1", len(caps))
			}
			c := caps[0]
			if c.Wiphy != 3 || c.Name != f.name {
				t.Errorf("wiphy %d %q, want 3 %q", c.Wiphy, c.Name, f.name)
			}
			want := slices.Sorted(slices.Values(f.iftypes))
			if !slices.Equal(c.Iftypes, want) {
				t.Errorf("iftypes %v, want %v", c.Iftypes, want)
			}
			if c.Features != f.features {
				t.Errorf("features %#x, want %#x", c.Features, f.features)
			}
			for _, i := range f.ext {
				if !c.HasExtFeature(i) {
					t.Errorf("ext feature %d missing", i)
				}
			}
			if got, want := c.HasExtFeature(ExtFeatureSAEOffl), slices.Contains(f.ext, ExtFeatureSAEOffl); got != want {
				t.Errorf("SAE offload %v, want %v", got, want)
			}
			var wantFreqs []Freq
			for _, b := range f.bands {
				wantFreqs = append(wantFreqs, b...)
			}
			if !slices.Equal(c.Freqs, wantFreqs) {
				t.Errorf("freqs\n got %v\nwant %v", c.Freqs, wantFreqs)
			}
			if len(c.Combinations) != len(f.combos) {
				t.Fatalf("combinations %d, want %d", len(c.Combinations), len(f.combos))
			}
			for i, comb := range c.Combinations {
				w := f.combos[i]
				if comb.MaxInterfaces != w.MaxInterfaces || comb.NumChannels != w.NumChannels || len(comb.Limits) != len(w.Limits) {
					t.Fatalf("combination %d = %+v, want %+v", i, comb, w)
				}
				for j, l := range comb.Limits {
					if l.Max != w.Limits[j].Max || !slices.Equal(l.Types, slices.Sorted(slices.Values(w.Limits[j].Types))) {
						t.Errorf("combination %d limit %d = %+v, want %+v", i, j, l, w.Limits[j])
					}
				}
			}
		})
	}
}

// A hand-written message, byte by byte as the kernel lays it out
// (little-endian host): wiphy 0, name "phy0", iftypes {ADHOC,
// MESH_POINT} in a nest with NLA_F_NESTED set, FEATURE_FLAGS SAE, and one
// 2.4 GHz frequency 2437 with NO_IR; then a second message for the same
// wiphy repeating the frequency (must not duplicate) and adding 2412.
func TestParseWiphyRawBytes(t *testing.T) {
	if !littleEndian() {
		t.Fatal("these bytes are little-endian; add a big-endian copy for this host")
	}
	msg1 := unhex(t, ""+
		"03010000"+ // genlmsghdr: cmd NEW_WIPHY, version 1
		"08000100"+"00000000"+ // WIPHY = 0
		"09000200"+"70687930"+"00000000"+ // WIPHY_NAME "phy0\0" + pad
		"0c002080"+"04000100"+"04000700"+ // SUPPORTED_IFTYPES (|NESTED): ADHOC, MESH_POINT
		"08008f00"+"20000000"+ // FEATURE_FLAGS = SAE (1<<5)
		"20001600"+ // WIPHY_BANDS, 32 bytes
		"1c000000"+ // band 0 (2 GHz), 28 bytes
		"18000100"+ // BAND_ATTR_FREQS, 24 bytes
		"14000000"+ // frequency entry 0, 20 bytes
		"08000100"+"85090000"+ // FREQ 2437
		"04000300"+ // NO_IR
		"04000500") // RADAR
	msg2 := unhex(t, ""+
		"03010000"+
		"08000100"+"00000000"+
		"28001600"+ // WIPHY_BANDS, 40 bytes
		"24000000"+ // band 0, 36 bytes
		"20000100"+ // FREQS, 32 bytes
		"0c000000"+"08000100"+"85090000"+ // 2437 again
		"10000100"+"08000100"+"6c090000"+"04000200") // 2412, DISABLED
	caps, err := ParseWiphyDump([][]byte{msg1, msg2})
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 1 {
		t.Fatalf("got %d wiphys, want 1", len(caps))
	}
	c := caps[0]
	if c.Name != "phy0" || !slices.Equal(c.Iftypes, []int{IftypeAdhoc, IftypeMeshPoint}) || !c.SAE() {
		t.Errorf("got %+v", c)
	}
	want := []Freq{{MHz: 2437, NoIR: true, Radar: true}, {MHz: 2412, Disabled: true}}
	if !slices.Equal(c.Freqs, want) {
		t.Errorf("freqs %+v, want %+v", c.Freqs, want)
	}
}

func TestParseWiphyDumpRefuses(t *testing.T) {
	good := fixHwsim.messages(0)
	tests := []struct {
		name string
		msgs [][]byte
		want string
	}{
		{"short genl header", [][]byte{{3, 1}}, "shorter than a genl header"},
		{"no wiphy attribute", [][]byte{unhex(t, "03010000"+"08008f0020000000")}, "no NL80211_ATTR_WIPHY"},
		{"attribute past the end", [][]byte{unhex(t, "03010000"+"ff000100"+"00000000")}, "malformed"},
		{"attribute shorter than its header", [][]byte{unhex(t, "03010000"+"02000100")}, "malformed"},
		{"trailing bytes", [][]byte{unhex(t, "03010000"+"0800010000000000"+"0102")}, "trailing"},
		{"u32 too short", [][]byte{unhex(t, "03010000"+"06000100"+"0000"+"0000")}, "for a u32"},
		{"broken frequency nest", append(slices.Clone(good), unhex(t, "03010000"+"0800010000000000"+"10001600"+"0c000000"+"08000100"+"ff000100")), "band 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWiphyDump(tt.msgs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseWiphyDump: error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Messages of another command are skipped, not misread.
	other := unhex(t, "07010000"+"0800030001000000")
	caps, err := ParseWiphyDump([][]byte{other})
	if err != nil || len(caps) != 0 {
		t.Errorf("a NEW_INTERFACE message: %v, %v; want skipped", caps, err)
	}
}

// Too many wiphys or frequencies are refused, not collected without end.
func TestParseWiphyDumpBounds(t *testing.T) {
	var msgs [][]byte
	for i := 0; i <= maxWiphys; i++ {
		e := newEncoder([]byte{cmdNewWiphy, 1, 0, 0})
		e.U32(attrWiphy, uint32(i))
		msgs = append(msgs, e.Bytes())
	}
	if _, err := ParseWiphyDump(msgs); err == nil || !strings.Contains(err.Error(), "more than 64 wiphys") {
		t.Errorf("%d wiphys: error %v", len(msgs), err)
	}
	var fs []Freq
	for i := 0; i <= maxFreqs; i++ {
		fs = append(fs, Freq{MHz: 1000 + i})
	}
	f := fixHwsim
	f.bands = [][]Freq{fs}
	f.split = 200
	if _, err := ParseWiphyDump(f.messages(0)); err == nil || !strings.Contains(err.Error(), "more than 1024 frequencies") {
		t.Errorf("%d frequencies: error %v", len(fs), err)
	}
}

func TestValidateChannel(t *testing.T) {
	tests := []struct {
		ch   int
		ok   bool
		freq int
	}{
		{1, true, 2412}, {6, true, 2437}, {13, true, 2472},
		{0, false, 0}, {-1, false, 0}, {14, false, 0}, {15, false, 0}, {35, false, 0},
		{36, true, 5180}, {37, false, 0}, {38, false, 0}, {64, true, 5320}, {68, false, 0},
		{100, true, 5500}, {144, true, 5720}, {145, false, 0}, {149, true, 5745}, {165, true, 5825},
		{166, false, 0}, {169, false, 0}, {1 << 30, false, 0},
	}
	for _, tt := range tests {
		err := ValidateChannel(tt.ch)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateChannel(%d) = %v, want ok=%v", tt.ch, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrChannel) {
			t.Errorf("ValidateChannel(%d) = %v, not ErrChannel", tt.ch, err)
		}
		f, err := ChannelFreq(tt.ch)
		if f != tt.freq || (err == nil) != tt.ok {
			t.Errorf("ChannelFreq(%d) = %d, %v; want %d", tt.ch, f, err, tt.freq)
		}
		if tt.ok {
			if back := FreqChannel(f); back != tt.ch {
				t.Errorf("FreqChannel(%d) = %d, want %d", f, back, tt.ch)
			}
		}
	}
	for _, f := range []int{0, 2411, 2413, 2477, 5000, 5181, 6000} {
		if c := FreqChannel(f); c != 0 {
			t.Errorf("FreqChannel(%d) = %d, want 0", f, c)
		}
	}
	if c := FreqChannel(2484); c != 14 {
		t.Errorf("FreqChannel(2484) = %d, want 14", c)
	}
}

func TestValidateSSID(t *testing.T) {
	tests := []struct {
		ssid string
		ok   bool
	}{
		{"Byzantium", true},
		{"a", true},
		{strings.Repeat("x", 32), true},
		{"ñandú mesh", true},             // 11 runes, 13 bytes
		{strings.Repeat("é", 16), true},  // 32 bytes
		{strings.Repeat("é", 17), false}, // 34 bytes
		{strings.Repeat("x", 33), false},
		{"", false},
		{"new\nline", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"\xff\xfe", false},
	}
	for _, tt := range tests {
		err := ValidateSSID(tt.ssid)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateSSID(%q) = %v, want ok=%v", tt.ssid, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrSSID) {
			t.Errorf("ValidateSSID(%q) = %v, not ErrSSID", tt.ssid, err)
		}
	}
}

func TestIBSSBSSID(t *testing.T) {
	a := IBSSBSSID("Byzantium", 6)
	if len(a) != 6 {
		t.Fatalf("BSSID %v: %d bytes", a, len(a))
	}
	if a[0]&0x01 != 0 || a[0]&0x02 == 0 {
		t.Errorf("BSSID %v: want unicast (bit 0 clear) and locally administered (bit 1 set)", a)
	}
	if !bytes.Equal(a, IBSSBSSID("Byzantium", 6)) {
		t.Error("BSSID not deterministic")
	}
	seen := map[string]string{}
	for _, s := range []string{"Byzantium", "byzantium", "Byzantium2"} {
		for _, ch := range []int{1, 6, 11, 36} {
			b := IBSSBSSID(s, ch)
			if b[0]&0x03 != 0x02 {
				t.Errorf("IBSSBSSID(%q, %d) = %v: not local unicast", s, ch, b)
			}
			if prev, dup := seen[b.String()]; dup {
				t.Errorf("IBSSBSSID(%q, %d) = %v, same as %s", s, ch, b, prev)
			}
			seen[b.String()] = s
		}
	}
}

func littleEndian() bool {
	var e encoder
	e.U32(1, 1)
	return e.Bytes()[4] == 1
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInterface(t *testing.T) {
	caps, err := fixMt7921.capabilities()
	if err != nil {
		t.Fatal(err)
	}
	got := Interface("wlan0", caps, Settings{SSID: "Byzantium", Channel: 6})
	if got.Name != "wlan0" || got.Kind != "wifi" || got.Mode != "none" || got.Meshing || !strings.Contains(got.Reason, "neither mesh point nor ad-hoc") {
		t.Errorf("mt7921: %+v", got)
	}
	caps, err = fixAth9k.capabilities()
	if err != nil {
		t.Fatal(err)
	}
	if got := Interface("wlan1", caps, Settings{SSID: "Byzantium", Channel: 6}); got.Mode != "mesh-point" || !got.Meshing {
		t.Errorf("ath9k: %+v", got)
	}
}

package fat

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// TestLFNEntries decodes what lfnEntries encodes, including a name with
// a surrogate pair (mtools 4.0.32 cannot show those, so the oracle tests
// leave them out) and lengths at the 13-unit entry boundaries.
func TestLFNEntries(t *testing.T) {
	for _, name := range []string{"a", "emoji-😀.txt", strings.Repeat("x", 13), strings.Repeat("y", 26), strings.Repeat("z", 255)} {
		const sum = 0x5A
		b := lfnEntries(name, sum)
		n := len(b) / dirEntrySize
		if want := (len(utf16.Encode([]rune(name))) + 12) / 13; n != want {
			t.Errorf("%q: %d entries, want %d", name, n, want)
		}
		var u []uint16
		for i := n - 1; i >= 0; i-- { // on disk the last part comes first
			e := b[i*dirEntrySize:]
			seq := n - i
			if wantOrd := byte(seq) | map[bool]byte{true: 0x40}[seq == n]; e[0] != wantOrd || e[11] != attrLFN || e[13] != sum || e[26] != 0 || e[27] != 0 {
				t.Errorf("%q entry %d: ord %#x attr %#x sum %#x", name, seq, e[0], e[11], e[13])
			}
			for _, off := range lfnOffsets {
				u = append(u, binary.LittleEndian.Uint16(e[off:]))
			}
		}
		for i, c := range u {
			if c == 0 {
				u = u[:i]
				break
			}
		}
		if got := string(utf16.Decode(u)); got != name {
			t.Errorf("decoded %q, want %q", got, name)
		}
	}
}

func TestAssignShortNames(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{[]string{"README.TXT", "readme.txt.bak", "Makefile"}, []string{"README  TXT", "README~1BAK", "MAKEFILE   "}},
		{[]string{"a.b.c", "ab.c"}, []string{"AB~1    C  ", "AB      C  "}},
		{[]string{"verylongname1", "verylongname2", "VERYLO~1"}, []string{"VERYLO~2   ", "VERYLO~3   ", "VERYLO~1   "}},
		{[]string{"...dots", "x y z"}, []string{"DOTS~1     ", "XYZ~1      "}},
		{[]string{"日本"}, []string{"__~1       "}},
	} {
		got, err := assignShortNames(tc.names)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("assignShortNames(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
	// Tails grow into the base as they get longer.
	names := make([]string, 12000)
	for i := range names {
		names[i] = strings.Repeat("n", 20) + string(rune('a'+i%26)) + strings.Repeat("-", i/26%10) + string(rune(0x4E00+i))
	}
	got, err := assignShortNames(names)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range got {
		if len(s) != 11 || seen[s] {
			t.Fatalf("short name %q is malformed or repeated", s)
		}
		seen[s] = true
	}
	if got[9999] != "NN~10000   " {
		t.Errorf("10000th short name = %q, want NN~10000", got[9999])
	}
}

func TestFatTime(t *testing.T) {
	for _, tc := range []struct {
		in         string
		date, time uint16
		tenth      byte
	}{
		{"2024-05-06T07:08:09Z", 44<<9 | 5<<5 | 6, 7<<11 | 8<<5 | 4, 100},
		{"2024-05-06T09:08:09+02:00", 44<<9 | 5<<5 | 6, 7<<11 | 8<<5 | 4, 100}, // stored as UTC
		{"1970-01-01T00:00:00Z", 0<<9 | 1<<5 | 1, 0, 0},                        // clamped to 1980
		{"2200-01-01T00:00:00Z", 127<<9 | 12<<5 | 31, 23<<11 | 59<<5 | 29, 0},  // clamped to 2107
	} {
		tm, err := timeParse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		d, h, x := fatTime(tm)
		if d != tc.date || h != tc.time || x != tc.tenth {
			t.Errorf("fatTime(%s) = %#x %#x %d, want %#x %#x %d", tc.in, d, h, x, tc.date, tc.time, tc.tenth)
		}
	}
}

func timeParse(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }

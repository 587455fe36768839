package radio

import (
	"strings"
	"testing"
)

func scanMsg(bssid []byte, mhz uint32, status int) []byte {
	var e encoder
	e.U32(attrIfindex, 4)
	e.Nested(attrBSS, func(b *encoder) {
		if bssid != nil {
			b.Put(bssBSSID, bssid)
		}
		b.U32(bssFrequency, mhz)
		if status >= 0 {
			b.U32(bssStatus, uint32(status))
		}
	})
	return append([]byte{cmdNewScanResults, 1, 0, 0}, e.Bytes()...)
}

func TestParseJoinedCell(t *testing.T) {
	cell := []byte{0x82, 0x2c, 0x65, 0x5b, 0x77, 0x0f}
	other := []byte{0x02, 1, 2, 3, 4, 5}
	tests := []struct {
		name    string
		msgs    [][]byte
		want    string // BSSID, "" for none
		mhz     int
		wantErr string
	}{
		{"joined after a stranger", [][]byte{scanMsg(other, 2412, -1), scanMsg(cell, 2437, bssStatusIBSSJoined)}, "82:2c:65:5b:77:0f", 2437, ""},
		{"associated is not an ibss", [][]byte{scanMsg(other, 2412, 1)}, "", 0, ""},
		{"none", nil, "", 0, ""},
		{"joined without a BSSID", [][]byte{scanMsg(nil, 2437, bssStatusIBSSJoined)}, "", 0, ""},
		{"short BSSID", [][]byte{scanMsg([]byte{1, 2}, 2437, bssStatusIBSSJoined)}, "", 0, "BSSID of 2 bytes"},
		{"short header", [][]byte{{cmdNewScanResults}}, "", 0, "shorter than a genl header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParseJoinedCell(tt.msgs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tt.want != "") || (ok && (got.BSSID.String() != tt.want || got.MHz != tt.mhz)) {
				t.Fatalf("got %v %d MHz, %v; want %q %d MHz", got.BSSID, got.MHz, ok, tt.want, tt.mhz)
			}
		})
	}
	many := make([][]byte, maxBSSes+1)
	for i := range many {
		many[i] = scanMsg(other, 2412, -1)
	}
	if _, _, err := ParseJoinedCell(many); err == nil {
		t.Error("a dump past the bound was read")
	}
}

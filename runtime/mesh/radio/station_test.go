package radio

import (
	"strings"
	"testing"
	"time"
)

// stationMsg builds one NL80211_CMD_NEW_STATION payload as the kernel
// sends it.
func stationMsg(cmd uint8, mac []byte, info func(*encoder)) []byte {
	var e encoder
	e.U32(attrIfindex, 4)
	if mac != nil {
		e.Put(attrMAC, mac)
	}
	e.U32(46, 9) // NL80211_ATTR_GENERATION, ignored
	if info != nil {
		e.Nested(attrStaInfo, info)
	}
	return append([]byte{cmd, 1, 0, 0}, e.Bytes()...)
}

func TestParseStationDump(t *testing.T) {
	peer := []byte{0x02, 0, 0, 0, 0x01, 0}
	full := stationMsg(cmdNewStation, peer, func(i *encoder) {
		i.U32(staInfoInactiveTime, 1500)
		i.U8(staInfoPlinkState, PlinkEstab)
		i.U8(staInfoSignal, 0xd6) // -42 dBm
	})
	ibss := stationMsg(cmdNewStation, []byte{0x02, 0, 0, 0, 0x02, 0}, func(i *encoder) {
		i.U32(staInfoInactiveTime, 20)
	})
	tests := []struct {
		name    string
		msgs    [][]byte
		want    []Station
		wantErr string
	}{
		{"mesh peer", [][]byte{full}, []Station{{MAC: peer, PlinkState: PlinkEstab, HasPlink: true,
			Inactive: 1500 * time.Millisecond, SignalDBm: -42, HasSignal: true}}, ""},
		{"ibss member, no plink", [][]byte{ibss}, []Station{{MAC: []byte{0x02, 0, 0, 0, 0x02, 0}, Inactive: 20 * time.Millisecond}}, ""},
		{"other command skipped", [][]byte{stationMsg(cmdNewWiphy, nil, nil), full}, []Station{{MAC: peer, PlinkState: PlinkEstab,
			HasPlink: true, Inactive: 1500 * time.Millisecond, SignalDBm: -42, HasSignal: true}}, ""},
		{"no MAC", [][]byte{stationMsg(cmdNewStation, nil, nil)}, nil, "no NL80211_ATTR_MAC"},
		{"short MAC", [][]byte{stationMsg(cmdNewStation, []byte{1, 2, 3}, nil)}, nil, "MAC of 3 bytes"},
		{"short inactive time", [][]byte{stationMsg(cmdNewStation, peer, func(i *encoder) { i.U8(staInfoInactiveTime, 1) })}, nil, "bytes for a u32"},
		{"empty plink", [][]byte{stationMsg(cmdNewStation, peer, func(i *encoder) { i.Put(staInfoPlinkState, nil) })}, nil, "empty plink"},
		{"truncated header", [][]byte{{cmdNewStation, 1}}, nil, "shorter than a genl header"},
		{"truncated attribute", [][]byte{append(stationMsg(cmdNewStation, peer, nil), 0x20, 0, 1)}, nil, "trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStationDump(tt.msgs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d stations %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.MAC.String() != w.MAC.String() || g.PlinkState != w.PlinkState || g.HasPlink != w.HasPlink ||
					g.Inactive != w.Inactive || g.SignalDBm != w.SignalDBm || g.HasSignal != w.HasSignal {
					t.Errorf("station %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestParseStationDumpBounded(t *testing.T) {
	msg := stationMsg(cmdNewStation, []byte{2, 0, 0, 0, 0, 1}, nil)
	msgs := make([][]byte, maxStations+1)
	for i := range msgs {
		msgs[i] = msg
	}
	if _, err := ParseStationDump(msgs); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v, want the station bound", err)
	}
}

func TestParseMeshConfig(t *testing.T) {
	conf := func(fwd []byte) []byte {
		var e encoder
		e.U32(attrIfindex, 4)
		e.Nested(attrMeshConfig, func(m *encoder) {
			m.U32(1, 100) // NL80211_MESHCONF_RETRY_TIMEOUT, ignored
			if fwd != nil {
				m.Put(meshconfForwarding, fwd)
			}
		})
		return append([]byte{cmdGetMeshConfig, 1, 0, 0}, e.Bytes()...)
	}
	tests := []struct {
		name    string
		msg     []byte
		want    MeshConfig
		wantErr string
	}{
		{"forwarding off", conf([]byte{0}), MeshConfig{Forwarding: false, HasForwarding: true}, ""},
		{"forwarding on", conf([]byte{1}), MeshConfig{Forwarding: true, HasForwarding: true}, ""},
		{"not reported", conf(nil), MeshConfig{}, ""},
		{"empty forwarding", conf([]byte{}), MeshConfig{}, "empty forwarding"},
		{"short", []byte{cmdGetMeshConfig}, MeshConfig{}, "shorter than a genl header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMeshConfig(tt.msg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

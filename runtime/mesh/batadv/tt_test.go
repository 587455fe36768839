package batadv

import (
	"net"
	"reflect"
	"strings"
	"testing"

	"byzantium/runtime/mesh/internal/nlattr"

	"golang.org/x/sys/unix"
)

var (
	batC  = net.HardwareAddr{0x02, 0xba, 0, 0, 0, 0x03}
	origC = net.HardwareAddr{0x52, 0x54, 0, 0x99, 0x03, 0x01}
)

// Two global TT rows written out byte by byte (little-endian host) in the
// order batadv_tt_global_dump_subentry puts them: node 3's bat0 MAC,
// untagged (the u16 VLAN 0: no BATADV_VLAN_HAS_TAG), the best; a wifi
// client of node 3's on VLAN 5 (0x8005), not the best. Kernel 6.1 in
// ci/meshguest sends the first row's VID as 0.
func TestParseGlobalTTRawBytes(t *testing.T) {
	if !littleEndian() {
		t.Fatal("these bytes are little-endian; add a big-endian copy for this host")
	}
	best := unhex(t, ""+
		"07010000"+ // genlmsghdr: GET_TRANSTABLE_GLOBAL, version 1
		"0a001000"+"02ba00000003"+"0000"+ // TT_ADDRESS + pad
		"0a000900"+"525400990301"+"0000"+ // ORIG_ADDRESS + pad
		"05001100"+"07"+"000000"+ // TT_TTVN 7
		"05001200"+"08"+"000000"+ // TT_LAST_TTVN 8
		"08001300"+"78563412"+ // TT_CRC32 0x12345678
		"06001400"+"0000"+"0000"+ // TT_VID untagged
		"08001500"+"00000000"+ // TT_FLAGS 0
		"04001600") // FLAG_BEST
	other := unhex(t, ""+
		"07010000"+
		"0a001000"+"02cc00000003"+"0000"+
		"0a000900"+"525400990301"+"0000"+
		"05001100"+"07"+"000000"+
		"05001200"+"08"+"000000"+
		"08001300"+"00000000"+
		"06001400"+"0580"+"0000"+ // TT_VID HAS_TAG|5
		"08001500"+"10000000") // TT_FLAGS WIFI
	got, err := ParseGlobalTT([][]byte{best, other})
	if err != nil {
		t.Fatal(err)
	}
	want := []TTEntry{
		{MAC: batC, Orig: origC, VID: -1, Best: true, TTVN: 7, LastTTVN: 8, CRC32: 0x12345678},
		{MAC: macC, Orig: origC, VID: 5, Flags: TTClientWifi, TTVN: 7, LastTTVN: 8},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// ttRow builds a global TT row with the attributes fill adds after the
// two addresses.
func ttRow(fill func(*encoder)) []byte {
	return row(cmdGetTranstableGlobal, func(e *encoder) {
		e.Put(attrTTAddress, batC)
		e.Put(attrOrigAddress, origC)
		fill(e)
	})
}

func u16(v uint16) []byte {
	var e encoder
	e.U32(0, uint32(v)) // native order: the u16 is the first two bytes
	return e.Bytes()[4:6]
}

func TestParseGlobalTTVID(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want int
		err  string
	}{
		{"untagged", u16(0), -1, ""},
		{"VLAN 0", u16(0x8000), 0, ""},
		{"VLAN 5", u16(0x8005), 5, ""},
		{"VLAN 4095", u16(0x8fff), 4095, ""},
		{"batadv_print_vid's -1", u16(0xffff), 0, "VID 0xffff"},
		{"an ID without the tag bit", u16(5), 0, "VID 0x0005"},
		{"bits past the VLAN ID", u16(0x9005), 0, "VID 0x9005"},
		{"one byte", []byte{5}, 0, "1 bytes for a u16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGlobalTT([][]byte{ttRow(func(e *encoder) { e.Put(attrTTVID, tt.data) })})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || len(got) != 1 || got[0].VID != tt.want {
				t.Fatalf("got %+v, %v; want VID %d", got, err, tt.want)
			}
		})
	}
	// A row without the attribute is untagged.
	got, err := ParseGlobalTT([][]byte{ttRow(func(*encoder) {})})
	if err != nil || got[0].VID != -1 || got[0].Best {
		t.Errorf("row without VID: %+v, %v", got, err)
	}
}

func TestParseGlobalTTRefuses(t *testing.T) {
	tt := func(fill func(*encoder)) []byte { return row(cmdGetTranstableGlobal, fill) }
	good := ttRow(func(*encoder) {})
	tests := []struct {
		name string
		msgs [][]byte
		want string
	}{
		{"short header", [][]byte{{7, 1}}, "shorter than a genl header"},
		{"wrong command", [][]byte{row(cmdGetOriginators, func(*encoder) {})}, "command 8, want 7"},
		{"no client address", [][]byte{tt(func(e *encoder) { e.Put(attrOrigAddress, origC) })}, "no client or originator address"},
		{"no originator", [][]byte{tt(func(e *encoder) { e.Put(attrTTAddress, batC) })}, "no client or originator address"},
		{"client MAC of 5 bytes", [][]byte{tt(func(e *encoder) { e.Put(attrTTAddress, batC[:5]) })}, "5 bytes for a MAC"},
		{"originator MAC of 7 bytes", [][]byte{tt(func(e *encoder) { e.Put(attrOrigAddress, append(origC, 0)) })}, "7 bytes for a MAC"},
		{"short flags", [][]byte{ttRow(func(e *encoder) { e.Put(attrTTFlags, []byte{1, 2, 3}) })}, "3 bytes for a u32"},
		{"empty TTVN", [][]byte{ttRow(func(e *encoder) { e.Put(attrTTTTVN, nil) })}, "empty u8"},
		{"short CRC", [][]byte{ttRow(func(e *encoder) { e.Put(attrTTCRC32, []byte{1}) })}, "1 bytes for a u32"},
		{"attribute past the end", [][]byte{append([]byte{cmdGetTranstableGlobal, 1, 0, 0}, 0x40, 0, 16, 0, 2, 0xba)}, "malformed"},
		{"attribute shorter than its header", [][]byte{append([]byte{cmdGetTranstableGlobal, 1, 0, 0}, 2, 0, 16, 0)}, "malformed"},
		{"truncated mid-row", [][]byte{good[:len(good)-3]}, "malformed"},
		{"a bad row after a good one", [][]byte{good, good[:6]}, "row 1"},
		{"too many rows", tooManyRows(good), "more than 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGlobalTT(tt.msgs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
			if got != nil {
				t.Errorf("returned %d rows with the error", len(got))
			}
		})
	}
	// A flood of rows up to the bound parses.
	many := tooManyRows(good)[:maxDumpMessages]
	if got, err := ParseGlobalTT(many); err != nil || len(got) != maxDumpMessages {
		t.Errorf("%d rows: %d parsed, %v", maxDumpMessages, len(got), err)
	}
	// An empty table is no error.
	if got, err := ParseGlobalTT(nil); err != nil || len(got) != 0 {
		t.Errorf("empty dump: %+v, %v", got, err)
	}
}

func tooManyRows(r []byte) [][]byte {
	out := make([][]byte, maxDumpMessages+1)
	for i := range out {
		out[i] = r
	}
	return out
}

// The parsed addresses are copies: the kernel's buffer may be reused.
func TestParseGlobalTTCopies(t *testing.T) {
	r := ttRow(func(*encoder) {})
	got, err := ParseGlobalTT([][]byte{r})
	if err != nil {
		t.Fatal(err)
	}
	for i := range r {
		r[i] = 0xee
	}
	if got[0].MAC.String() != batC.String() || got[0].Orig.String() != origC.String() {
		t.Errorf("entry changed with the input: %+v", got[0])
	}
}

// The dump request as nlattr.Dump sends it for GlobalTT: nlmsghdr (type
// the family's id, NLM_F_REQUEST|NLM_F_DUMP), genlmsghdr
// GET_TRANSTABLE_GLOBAL version 1, MESH_IFINDEX — what batctl's
// `transglobal` sends and batadv_tt_global_dump needs.
func TestGlobalTTRequest(t *testing.T) {
	if !littleEndian() {
		t.Fatal("these bytes are little-endian; add a big-endian copy for this host")
	}
	b := nlattr.Request(0x1c, cmdGetTranstableGlobal, unix.NLM_F_DUMP, dumpAttrs(5)).Serialize()
	if len(b) >= 12 {
		copy(b[8:12], []byte{0, 0, 0, 0}) // the sequence number changes per request
	}
	want := unhex(t, ""+
		"1c000000"+ // nlmsg_len 28
		"1c00"+ // nlmsg_type: the family id
		"0103"+ // NLM_F_REQUEST|NLM_F_DUMP
		"00000000"+ // seq (zeroed)
		"00000000"+ // pid
		"07010000"+ // GET_TRANSTABLE_GLOBAL, version 1
		"08000300"+"05000000") // MESH_IFINDEX 5
	if string(b) != string(want) {
		t.Errorf("got  %x\nwant %x", b, want)
	}
}

func FuzzParseGlobalTT(f *testing.F) {
	f.Add(ttRow(func(e *encoder) {
		e.U8(attrTTTTVN, 3)
		e.Put(attrTTVID, u16(0x8005))
		e.U32(attrTTFlags, TTClientWifi)
		e.Flag(attrFlagBest)
	}))
	f.Fuzz(func(t *testing.T, m []byte) {
		got, err := ParseGlobalTT([][]byte{m})
		if err != nil {
			return
		}
		for _, e := range got {
			if len(e.MAC) != 6 || len(e.Orig) != 6 || e.VID < -1 || e.VID > maxVID {
				t.Fatalf("entry %+v", e)
			}
		}
	})
}

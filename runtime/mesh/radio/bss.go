package radio

import (
	"fmt"
	"net"
)

// Scan result values (enum nl80211_bss, enum nl80211_bss_status).
const (
	cmdGetScan          = 32 // NL80211_CMD_GET_SCAN
	cmdNewScanResults   = 34 // NL80211_CMD_NEW_SCAN_RESULTS (the dump's replies)
	attrBSS             = 47 // NL80211_ATTR_BSS, nested
	bssBSSID            = 1  // NL80211_BSS_BSSID, 6 bytes
	bssFrequency        = 2  // NL80211_BSS_FREQUENCY, u32 MHz
	bssStatus           = 9  // NL80211_BSS_STATUS, u32
	bssStatusIBSSJoined = 2  // NL80211_BSS_STATUS_IBSS_JOINED
)

// maxBSSes bounds a scan dump: every entry is a beacon someone sent.
const maxBSSes = 1024

// JoinedCell is the ad-hoc cell an interface is in: its BSSID and
// frequency, as the kernel's scan results mark it (IBSS_JOINED).
type JoinedCell struct {
	BSSID net.HardwareAddr
	MHz   int
}

// ParseJoinedCell reads a NL80211_CMD_GET_SCAN dump (genl payloads) and
// returns the cell marked joined, if any. A driver that ignores the fixed
// BSSID (brcmfmac) shows here as a BSSID other than IBSSBSSID's.
func ParseJoinedCell(msgs [][]byte) (JoinedCell, bool, error) {
	if len(msgs) > maxBSSes {
		return JoinedCell{}, false, fmt.Errorf("nl80211 scan dump: more than %d entries", maxBSSes)
	}
	for i, m := range msgs {
		if len(m) < genlHdrLen {
			return JoinedCell{}, false, fmt.Errorf("nl80211 scan message %d: %d bytes, shorter than a genl header", i, len(m))
		}
		if m[0] != cmdNewScanResults {
			continue
		}
		attrs, err := parseAttrs(m[genlHdrLen:])
		if err != nil {
			return JoinedCell{}, false, fmt.Errorf("nl80211 scan message %d: %w", i, err)
		}
		for _, a := range attrs {
			if a.Type != attrBSS {
				continue
			}
			bss, err := parseAttrs(a.Data)
			if err != nil {
				return JoinedCell{}, false, fmt.Errorf("nl80211 scan message %d: %w", i, err)
			}
			var cell JoinedCell
			joined := false
			for _, b := range bss {
				switch b.Type {
				case bssBSSID:
					if len(b.Data) != 6 {
						return JoinedCell{}, false, fmt.Errorf("nl80211 scan message %d: BSSID of %d bytes", i, len(b.Data))
					}
					cell.BSSID = net.HardwareAddr(append([]byte(nil), b.Data...))
				case bssFrequency:
					v, err := attrU32(b)
					if err != nil {
						return JoinedCell{}, false, fmt.Errorf("nl80211 scan message %d: %w", i, err)
					}
					cell.MHz = int(v)
				case bssStatus:
					v, err := attrU32(b)
					if err != nil {
						return JoinedCell{}, false, fmt.Errorf("nl80211 scan message %d: %w", i, err)
					}
					joined = v == bssStatusIBSSJoined
				}
			}
			if joined && cell.BSSID != nil {
				return cell, true, nil
			}
		}
	}
	return JoinedCell{}, false, nil
}

// JoinedCell returns the ad-hoc cell ifindex is in, from the kernel's
// scan results (no scan is started: joining a cell records it).
func (c *Client) JoinedCell(ifindex int) (JoinedCell, bool, error) {
	msgs, err := c.dump(fmt.Sprintf("get scan of %d", ifindex), cmdGetScan, ifindexAttrs(ifindex))
	if err != nil {
		return JoinedCell{}, false, err
	}
	return ParseJoinedCell(msgs)
}

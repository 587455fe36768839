// Package radio reads what a wifi card can do over nl80211, chooses how it
// meshes (802.11s mesh point, else ad-hoc, else not at all, with a reason
// the panel shows), and sets the card up for that mode.
//
// Everything here speaks nl80211 (generic netlink) directly: no iw, no
// scraping. The mesh key on 802.11s (SAE) is wpa_supplicant's job, since the
// kernel leaves SAE and the mesh peering (AMPE) to user space; see
// WPASupplicantMeshConfig.
package radio

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Capabilities are what one wiphy (radio) reports in its
// NL80211_CMD_NEW_WIPHY messages.
type Capabilities struct {
	Wiphy int    // the wiphy index (phyN)
	Name  string // the wiphy name, "phy0"
	// Driver is the kernel driver's name ("ath9k", "brcmfmac"). nl80211
	// does not carry it: the caller fills it from sysfs (DriverName).
	Driver string
	// Iftypes are the interface types the card supports
	// (NL80211_ATTR_SUPPORTED_IFTYPES), sorted; SoftwareIftypes those it
	// supports without limits (monitor, AP VLAN).
	Iftypes         []int
	SoftwareIftypes []int
	Combinations    []Combination
	// Features is NL80211_ATTR_FEATURE_FLAGS; ExtFeatures the
	// NL80211_ATTR_EXT_FEATURES bitmap (bit i of byte i/8).
	Features    uint32
	ExtFeatures []byte
	// Freqs are the channels of every band, in the order reported.
	Freqs []Freq
}

// Combination is one NL80211_ATTR_INTERFACE_COMBINATIONS entry: how many
// interfaces of which types can run at once.
type Combination struct {
	Limits        []Limit
	MaxInterfaces int
	NumChannels   int
}

// Limit is at most Max interfaces of any of Types.
type Limit struct {
	Max   int
	Types []int
}

// Freq is one channel as the card reports it (after regulatory rules).
type Freq struct {
	MHz      int
	Disabled bool // not usable at all here
	NoIR     bool // no initiating radiation: may not beacon, so no mesh or IBSS
	Radar    bool // DFS: radar detection required before use
}

// Supports says whether the card offers an interface type.
func (c Capabilities) Supports(iftype int) bool {
	return slices.Contains(c.Iftypes, iftype)
}

// HasExtFeature reports bit i of NL80211_ATTR_EXT_FEATURES.
func (c Capabilities) HasExtFeature(i int) bool {
	if i < 0 || i/8 >= len(c.ExtFeatures) {
		return false
	}
	return c.ExtFeatures[i/8]&(1<<(i%8)) != 0
}

// Freq finds a channel by its centre frequency.
func (c Capabilities) Freq(mhz int) (Freq, bool) {
	for _, f := range c.Freqs {
		if f.MHz == mhz {
			return f, true
		}
	}
	return Freq{}, false
}

// SAE says whether the mesh key can be enforced on 802.11s: SAE run by
// wpa_supplicant needs NL80211_FEATURE_SAE (every mac80211 driver sets it).
// NL80211_EXT_FEATURE_SAE_OFFLOAD is firmware SAE for a station's
// connection only, no help to a mesh.
func (c Capabilities) SAE() bool { return c.Features&FeatureSAE != 0 }

// Bounds on what one dump may hold. A real machine has a handful of
// radios, each under 100 channels and a few combinations; these limits
// only stop a broken driver from growing our memory without end.
const (
	maxWiphys       = 64
	maxFreqs        = 1024
	maxCombinations = 64
	maxLimits       = 64
	genlHdrLen      = 4 // struct genlmsghdr: cmd, version, reserved u16
)

// ParseWiphyDump reads the replies to NL80211_CMD_GET_WIPHY with
// NL80211_ATTR_SPLIT_WIPHY_DUMP: each message is a generic netlink payload
// (genlmsghdr, then attributes), and one wiphy's facts are spread over
// several messages that share NL80211_ATTR_WIPHY. The result is in wiphy
// order of first appearance.
func ParseWiphyDump(msgs [][]byte) ([]Capabilities, error) {
	var out []Capabilities
	index := map[int]int{} // wiphy → position in out
	for i, m := range msgs {
		if len(m) < genlHdrLen {
			return nil, fmt.Errorf("nl80211 wiphy message %d: %d bytes, shorter than a genl header", i, len(m))
		}
		if m[0] != cmdNewWiphy {
			continue // not a wiphy message: nothing of ours
		}
		attrs, err := parseAttrs(m[genlHdrLen:])
		if err != nil {
			return nil, fmt.Errorf("nl80211 wiphy message %d: %w", i, err)
		}
		wiphy := -1
		for _, a := range attrs {
			if a.Type == attrWiphy {
				v, err := attrU32(a)
				if err != nil {
					return nil, fmt.Errorf("nl80211 wiphy message %d: %w", i, err)
				}
				wiphy = int(v)
			}
		}
		if wiphy < 0 {
			return nil, fmt.Errorf("nl80211 wiphy message %d: no NL80211_ATTR_WIPHY", i)
		}
		pos, ok := index[wiphy]
		if !ok {
			if len(out) == maxWiphys {
				return nil, fmt.Errorf("nl80211 wiphy dump: more than %d wiphys", maxWiphys)
			}
			pos = len(out)
			index[wiphy] = pos
			out = append(out, Capabilities{Wiphy: wiphy})
		}
		if err := out[pos].merge(attrs); err != nil {
			return nil, fmt.Errorf("nl80211 wiphy %d (message %d): %w", wiphy, i, err)
		}
	}
	for i := range out {
		slices.Sort(out[i].Iftypes)
		slices.Sort(out[i].SoftwareIftypes)
	}
	return out, nil
}

// merge adds one message's attributes. Split dumps send each part once,
// but a part seen twice (a driver or kernel quirk) must not duplicate
// entries, so iftypes and frequencies are kept as sets.
func (c *Capabilities) merge(attrs []attr) error {
	for _, a := range attrs {
		var err error
		switch a.Type {
		case attrWiphyName:
			c.Name = attrString(a)
		case attrSupportedIftypes:
			c.Iftypes, err = parseIftypeSet(a.Data, c.Iftypes)
		case attrSoftwareIftypes:
			c.SoftwareIftypes, err = parseIftypeSet(a.Data, c.SoftwareIftypes)
		case attrFeatureFlags:
			var v uint32
			v, err = attrU32(a)
			c.Features |= v
		case attrExtFeatures:
			d := a.Data
			if len(d) > maxExtFeatureLen {
				d = d[:maxExtFeatureLen]
			}
			c.ExtFeatures = slices.Clone(d)
		case attrInterfaceCombinations:
			err = c.parseCombinations(a.Data)
		case attrWiphyBands:
			err = c.parseBands(a.Data)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseIftypeSet reads a nest of flag attributes whose types are iftypes.
func parseIftypeSet(b []byte, into []int) ([]int, error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return into, fmt.Errorf("iftypes: %w", err)
	}
	for _, a := range attrs {
		t := int(a.Type)
		if t == 0 || t >= iftypeLimit || slices.Contains(into, t) {
			continue
		}
		into = append(into, t)
	}
	return into, nil
}

func (c *Capabilities) parseCombinations(b []byte) error {
	combs, err := parseAttrs(b)
	if err != nil {
		return fmt.Errorf("interface combinations: %w", err)
	}
	for _, ca := range combs {
		if len(c.Combinations) == maxCombinations {
			return fmt.Errorf("interface combinations: more than %d", maxCombinations)
		}
		fields, err := parseAttrs(ca.Data)
		if err != nil {
			return fmt.Errorf("interface combination: %w", err)
		}
		var comb Combination
		for _, f := range fields {
			switch f.Type {
			case combMaxNum:
				v, err := attrU32(f)
				if err != nil {
					return err
				}
				comb.MaxInterfaces = int(v)
			case combNumChannels:
				v, err := attrU32(f)
				if err != nil {
					return err
				}
				comb.NumChannels = int(v)
			case combLimits:
				limits, err := parseAttrs(f.Data)
				if err != nil {
					return fmt.Errorf("interface combination limits: %w", err)
				}
				if len(limits) > maxLimits {
					return fmt.Errorf("interface combination: %d limits, more than %d", len(limits), maxLimits)
				}
				for _, la := range limits {
					lf, err := parseAttrs(la.Data)
					if err != nil {
						return fmt.Errorf("interface combination limit: %w", err)
					}
					var l Limit
					for _, x := range lf {
						switch x.Type {
						case limitMax:
							v, err := attrU32(x)
							if err != nil {
								return err
							}
							l.Max = int(v)
						case limitTypes:
							if l.Types, err = parseIftypeSet(x.Data, nil); err != nil {
								return err
							}
							slices.Sort(l.Types)
						}
					}
					comb.Limits = append(comb.Limits, l)
				}
			}
		}
		c.Combinations = append(c.Combinations, comb)
	}
	return nil
}

func (c *Capabilities) parseBands(b []byte) error {
	bands, err := parseAttrs(b)
	if err != nil {
		return fmt.Errorf("bands: %w", err)
	}
	for _, band := range bands {
		battrs, err := parseAttrs(band.Data)
		if err != nil {
			return fmt.Errorf("band %d: %w", band.Type, err)
		}
		for _, ba := range battrs {
			if ba.Type != bandAttrFreqs {
				continue // bitrates, HT/VHT/HE capabilities: not needed to choose a mode
			}
			freqs, err := parseAttrs(ba.Data)
			if err != nil {
				return fmt.Errorf("band %d frequencies: %w", band.Type, err)
			}
			for _, fa := range freqs {
				f, err := parseFreq(fa.Data)
				if err != nil {
					return fmt.Errorf("band %d: %w", band.Type, err)
				}
				if f.MHz == 0 {
					continue
				}
				if _, dup := c.Freq(f.MHz); dup {
					continue
				}
				if len(c.Freqs) == maxFreqs {
					return fmt.Errorf("more than %d frequencies", maxFreqs)
				}
				c.Freqs = append(c.Freqs, f)
			}
		}
	}
	return nil
}

func parseFreq(b []byte) (Freq, error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return Freq{}, fmt.Errorf("frequency: %w", err)
	}
	var f Freq
	for _, a := range attrs {
		switch a.Type {
		case freqAttrFreq:
			if len(a.Data) < 4 {
				return Freq{}, fmt.Errorf("frequency: %w: %d bytes for a u32", errMalformed, len(a.Data))
			}
			f.MHz = int(binary.NativeEndian.Uint32(a.Data))
		case freqAttrDisabled:
			f.Disabled = true
		case freqAttrNoIR:
			f.NoIR = true
		case freqAttrRadar:
			f.Radar = true
		}
	}
	return f, nil
}

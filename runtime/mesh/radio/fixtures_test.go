package radio

import "slices"

// Recorded capability sets. This host has no radio, so each card's
// nl80211 answer is rebuilt here from the facts its driver registers, and
// encoded into the bytes of a split NL80211_CMD_NEW_WIPHY dump
// (wiphyFixture.messages) so that every mode test also goes through the
// parser. Where each fact comes from is said per card; the frequency
// flags are those a card reports under regulatory domain DE
// (wireless-regdb: 2.4 GHz 1–13; 5 GHz 36–48 free, 52–64 and 100–140 DFS,
// i.e. radar + no-IR; 149–165 not allowed, i.e. disabled).

type wiphyFixture struct {
	name     string // wiphy name
	driver   string
	iftypes  []int
	software []int
	combos   []Combination
	features uint32
	ext      []int          // ext feature bit indexes
	bands    [][]Freq       // index = enum nl80211_band
	split    int            // frequencies per message in the split dump
	extra    func(*encoder) // more top-level attributes, for odd cards
}

func freqs24() []Freq {
	var f []Freq
	for ch := 1; ch <= 13; ch++ {
		f = append(f, Freq{MHz: 2407 + 5*ch})
	}
	return append(f, Freq{MHz: 2484, Disabled: true}) // channel 14: not in DE
}

func freqs5() []Freq {
	var f []Freq
	for ch := 36; ch <= 165; ch++ {
		if ValidateChannel(ch) != nil {
			continue
		}
		fr := Freq{MHz: 5000 + 5*ch}
		switch {
		case ch >= 52 && ch <= 144:
			fr.Radar, fr.NoIR = true, true
		case ch >= 149:
			fr.Disabled = true
		}
		f = append(f, fr)
	}
	return f
}

// allNoIR marks every channel no-IR, as Intel's firmware regulatory
// (LAR) typically reports 5 GHz until it has seen an access point's
// country information.
func allNoIR(fs []Freq) []Freq {
	out := slices.Clone(fs)
	for i := range out {
		out[i].NoIR = true
	}
	return out
}

var (
	// mac80211 itself adds MONITOR to every card's modes and, on every
	// mac80211 driver, sets NL80211_FEATURE_SAE (net/mac80211/main.c,
	// ieee80211_alloc_hw_nm / ieee80211_register_hw).
	mac80211Software = []int{IftypeMonitor, IftypeAPVLAN}

	// ath9k (Atheros AR9xxx, mac80211): drivers/net/wireless/ath/ath9k/
	// init.c ath9k_set_hw_capab registers AP, P2P_GO, P2P_CLIENT,
	// STATION, ADHOC, MESH_POINT (CONFIG_MAC80211_MESH, on in Debian) and
	// OCB; its if_comb limits AP/MESH_POINT to 8 and STATION to 2048.
	// Dual band (AR9380).
	fixAth9k = wiphyFixture{
		name: "phy0", driver: "ath9k",
		iftypes:  []int{IftypeAdhoc, IftypeStation, IftypeAP, IftypeMonitor, IftypeMeshPoint, IftypeP2PClient, IftypeP2PGO, IftypeOCB, IftypeAPVLAN},
		software: mac80211Software,
		combos: []Combination{{
			Limits:        []Limit{{Max: 2048, Types: []int{IftypeStation}}, {Max: 8, Types: []int{IftypeAP, IftypeMeshPoint}}},
			MaxInterfaces: 2048, NumChannels: 1,
		}},
		features: FeatureSAE,
		bands:    [][]Freq{freqs24(), freqs5()},
		split:    8,
	}

	// iwlwifi (Intel, mvm/mld, mac80211): drivers/net/wireless/intel/
	// iwlwifi/mvm/mac80211.c iwl_mvm_mac_setup_register (and mld's
	// iwl_mac_hw_set_wiphy) register STATION, P2P_CLIENT, AP, P2P_GO,
	// P2P_DEVICE and ADHOC: ad-hoc but no mesh point.
	fixIwlwifi = wiphyFixture{
		name: "phy0", driver: "iwlwifi",
		iftypes:  []int{IftypeAdhoc, IftypeStation, IftypeAP, IftypeMonitor, IftypeP2PClient, IftypeP2PGO, IftypeP2PDevice, IftypeAPVLAN},
		software: mac80211Software,
		combos: []Combination{{
			Limits:        []Limit{{Max: 1, Types: []int{IftypeStation}}, {Max: 1, Types: []int{IftypeAP, IftypeP2PClient, IftypeP2PGO}}, {Max: 1, Types: []int{IftypeP2PDevice}}},
			MaxInterfaces: 3, NumChannels: 2,
		}},
		features: FeatureSAE,
		bands:    [][]Freq{freqs24(), allNoIR(freqs5())},
		split:    16,
	}

	// mt7921 (MediaTek, mt76, mac80211): drivers/net/wireless/mediatek/
	// mt76/mt7921/init.c sets interface_modes to STATION (AP in later
	// kernels) and if_limits of STATION and one AP: neither mesh point nor
	// ad-hoc.
	fixMt7921 = wiphyFixture{
		name: "phy0", driver: "mt7921e",
		iftypes:  []int{IftypeStation, IftypeAP, IftypeMonitor},
		software: []int{IftypeMonitor},
		combos: []Combination{{
			Limits:        []Limit{{Max: 4, Types: []int{IftypeStation}}, {Max: 1, Types: []int{IftypeAP}}},
			MaxInterfaces: 4, NumChannels: 1,
		}},
		features: FeatureSAE,
		bands:    [][]Freq{freqs24(), freqs5()},
		split:    10,
	}

	// brcmfmac (Broadcom full-MAC, no mac80211): drivers/net/wireless/
	// broadcom/brcm80211/brcmfmac/cfg80211.c brcmf_setup_ifmodes sets
	// STATION, ADHOC and AP (P2P ones when the firmware has p2p); no mesh
	// point, and no NL80211_FEATURE_SAE (firmware SAE is the
	// SAE_OFFLOAD ext feature). The BCM43430 of a Raspberry Pi 3 is
	// 2.4 GHz only. Its IBSS ignores a requested BSSID (the firmware picks
	// one), a field complaint: cells split.
	fixBrcmfmac = wiphyFixture{
		name: "phy0", driver: "brcmfmac",
		iftypes: []int{IftypeAdhoc, IftypeStation, IftypeAP},
		combos: []Combination{{
			Limits:        []Limit{{Max: 1, Types: []int{IftypeStation}}, {Max: 1, Types: []int{IftypeAP}}},
			MaxInterfaces: 2, NumChannels: 1,
		}},
		ext:   []int{ExtFeatureSAEOffl},
		bands: [][]Freq{freqs24()},
		split: 5,
	}

	// mac80211_hwsim (simulated radios, the QEMU wifi test):
	// drivers/net/wireless/mac80211_hwsim.c (virtual/ since 6.2)
	// hwsim_if_limits: ADHOC (1), STATION, P2P_CLIENT, MESH_POINT, AP,
	// P2P_GO (2048), and P2P_DEVICE; it offers every 2.4 and 5 GHz channel
	// (hwsim_channels_2ghz/5ghz). With no country set it is in cfg80211's
	// world regdomain (net/wireless/reg.c world_regdom): 1–11 free, 12–14
	// no-IR, all of 5 GHz no-IR (52–144 also DFS). So the QEMU test meshes
	// on 2.4 GHz, or sets a country first.
	fixHwsim = wiphyFixture{
		name: "phy2", driver: "",
		iftypes:  []int{IftypeAdhoc, IftypeStation, IftypeAP, IftypeMonitor, IftypeMeshPoint, IftypeP2PClient, IftypeP2PGO, IftypeP2PDevice, IftypeOCB, IftypeAPVLAN},
		software: mac80211Software,
		combos: []Combination{{
			Limits: []Limit{
				{Max: 1, Types: []int{IftypeAdhoc}},
				{Max: 2048, Types: []int{IftypeStation, IftypeAP, IftypeMeshPoint, IftypeP2PClient, IftypeP2PGO}},
			},
			MaxInterfaces: 2048, NumChannels: 1,
		}},
		features: FeatureSAE,
		bands: [][]Freq{func() []Freq {
			f := freqs24()
			f[11].NoIR, f[12].NoIR = true, true
			f[13].Disabled, f[13].NoIR = false, true
			return f
		}(), func() []Freq {
			f := allNoIR(freqs5())
			for i := range f {
				f[i].Disabled = false
			}
			return f
		}()},
		split: 64,
	}
)

// messages encodes the fixture as the kernel's split dump does: the
// identity and iftypes first, then the combinations, then each band's
// frequencies in chunks of split (the kernel continues a band in the next
// message when it runs out of room), and the ext features last.
func (f wiphyFixture) messages(wiphy uint32) [][]byte {
	head := func(e *encoder) {
		e.U32(attrWiphy, wiphy)
		e.Put(attrWiphyName, append([]byte(f.name), 0))
	}
	msg := func(fill func(*encoder)) []byte {
		e := newEncoder([]byte{cmdNewWiphy, 1, 0, 0})
		head(e)
		fill(e)
		return e.Bytes()
	}
	iftypeNest := func(e *encoder, typ uint16, types []int) {
		e.Nested(typ, func(n *encoder) {
			for _, t := range types {
				n.Flag(uint16(t))
			}
		})
	}
	var out [][]byte
	out = append(out, msg(func(e *encoder) {
		iftypeNest(e, attrSupportedIftypes, f.iftypes)
		if f.software != nil {
			iftypeNest(e, attrSoftwareIftypes, f.software)
		}
		e.U32(attrFeatureFlags, f.features)
		if f.extra != nil {
			f.extra(e)
		}
	}))
	out = append(out, msg(func(e *encoder) {
		e.Nested(attrInterfaceCombinations, func(cs *encoder) {
			for i, c := range f.combos {
				cs.Nested(uint16(i+1), func(ce *encoder) {
					ce.Nested(combLimits, func(ls *encoder) {
						for j, l := range c.Limits {
							ls.Nested(uint16(j+1), func(le *encoder) {
								le.U32(limitMax, uint32(l.Max))
								iftypeNest(le, limitTypes, l.Types)
							})
						}
					})
					ce.U32(combMaxNum, uint32(c.MaxInterfaces))
					ce.U32(combNumChannels, uint32(c.NumChannels))
				})
			}
		})
	}))
	for band, fs := range f.bands {
		for start := 0; start < len(fs); start += f.split {
			chunk := fs[start:min(start+f.split, len(fs))]
			out = append(out, msg(func(e *encoder) {
				e.Nested(attrWiphyBands, func(bs *encoder) {
					bs.Nested(uint16(band), func(be *encoder) {
						be.Nested(bandAttrFreqs, func(fe *encoder) {
							for i, fr := range chunk {
								fe.Nested(uint16(start+i), func(x *encoder) {
									x.U32(freqAttrFreq, uint32(fr.MHz))
									if fr.Disabled {
										x.Flag(freqAttrDisabled)
									}
									if fr.NoIR {
										x.Flag(freqAttrNoIR)
									}
									if fr.Radar {
										x.Flag(freqAttrRadar)
									}
								})
							}
						})
					})
				})
			}))
		}
	}
	out = append(out, msg(func(e *encoder) {
		bits := make([]byte, 9) // the kernel sends (NUM_NL80211_EXT_FEATURES+7)/8 bytes
		for _, i := range f.ext {
			bits[i/8] |= 1 << (i % 8)
		}
		e.Put(attrExtFeatures, bits)
	}))
	return out
}

// capabilities parses the fixture's dump, as Client.Wiphys does.
func (f wiphyFixture) capabilities() (Capabilities, error) {
	caps, err := ParseWiphyDump(f.messages(0))
	if err != nil {
		return Capabilities{}, err
	}
	if len(caps) != 1 {
		return Capabilities{}, errMalformed
	}
	caps[0].Driver = f.driver
	return caps[0], nil
}

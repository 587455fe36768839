package radio

// Values from the kernel's uapi header linux/nl80211.h (Debian 12's
// linux-libc-dev 6.1), printed by compiling a C program against it rather
// than counted by hand: the enums there are long and implicit.

const nl80211Family = "nl80211" // NL80211_GENL_NAME

// Commands (enum nl80211_commands).
const (
	cmdGetWiphy      = 1  // NL80211_CMD_GET_WIPHY
	cmdNewWiphy      = 3  // NL80211_CMD_NEW_WIPHY (the reply to GET_WIPHY)
	cmdGetInterface  = 5  // NL80211_CMD_GET_INTERFACE
	cmdSetInterface  = 6  // NL80211_CMD_SET_INTERFACE
	cmdGetStation    = 17 // NL80211_CMD_GET_STATION
	cmdNewStation    = 19 // NL80211_CMD_NEW_STATION (the reply to GET_STATION)
	cmdGetMeshConfig = 28 // NL80211_CMD_GET_MESH_CONFIG
	cmdJoinIBSS      = 43 // NL80211_CMD_JOIN_IBSS
	cmdLeaveIBSS     = 44 // NL80211_CMD_LEAVE_IBSS
	cmdJoinMesh      = 68 // NL80211_CMD_JOIN_MESH
	cmdLeaveMesh     = 69 // NL80211_CMD_LEAVE_MESH
)

// Attributes (enum nl80211_attrs).
const (
	attrWiphy                 = 1   // NL80211_ATTR_WIPHY, u32
	attrWiphyName             = 2   // NL80211_ATTR_WIPHY_NAME, string
	attrIfindex               = 3   // NL80211_ATTR_IFINDEX, u32
	attrIftype                = 5   // NL80211_ATTR_IFTYPE, u32
	attrStaInfo               = 21  // NL80211_ATTR_STA_INFO, nested
	attrWiphyBands            = 22  // NL80211_ATTR_WIPHY_BANDS, nested
	attrMeshID                = 24  // NL80211_ATTR_MESH_ID, binary ≤ 32
	attrSupportedIftypes      = 32  // NL80211_ATTR_SUPPORTED_IFTYPES, nested flags
	attrMeshConfig            = 35  // NL80211_ATTR_MESH_CONFIG, nested
	attrWiphyFreq             = 38  // NL80211_ATTR_WIPHY_FREQ, u32 MHz
	attrSSID                  = 52  // NL80211_ATTR_SSID, binary ≤ 32
	attrFreqFixed             = 60  // NL80211_ATTR_FREQ_FIXED, flag
	attrMAC                   = 6   // NL80211_ATTR_MAC, 6 bytes
	attrMeshSetup             = 112 // NL80211_ATTR_MESH_SETUP, nested
	attrInterfaceCombinations = 120 // NL80211_ATTR_INTERFACE_COMBINATIONS, nested
	attrSoftwareIftypes       = 121 // NL80211_ATTR_SOFTWARE_IFTYPES, nested flags
	attrFeatureFlags          = 143 // NL80211_ATTR_FEATURE_FLAGS, u32
	attrChannelWidth          = 159 // NL80211_ATTR_CHANNEL_WIDTH, u32
	attrCenterFreq1           = 160 // NL80211_ATTR_CENTER_FREQ1, u32
	attrSplitWiphyDump        = 174 // NL80211_ATTR_SPLIT_WIPHY_DUMP, flag
	attrExtFeatures           = 217 // NL80211_ATTR_EXT_FEATURES, byte bitmap
)

// Interface types (enum nl80211_iftype).
const (
	IftypeAdhoc     = 1  // NL80211_IFTYPE_ADHOC (IBSS)
	IftypeStation   = 2  // NL80211_IFTYPE_STATION
	IftypeAP        = 3  // NL80211_IFTYPE_AP
	IftypeAPVLAN    = 4  // NL80211_IFTYPE_AP_VLAN
	IftypeWDS       = 5  // NL80211_IFTYPE_WDS
	IftypeMonitor   = 6  // NL80211_IFTYPE_MONITOR
	IftypeMeshPoint = 7  // NL80211_IFTYPE_MESH_POINT (802.11s)
	IftypeP2PClient = 8  // NL80211_IFTYPE_P2P_CLIENT
	IftypeP2PGO     = 9  // NL80211_IFTYPE_P2P_GO
	IftypeP2PDevice = 10 // NL80211_IFTYPE_P2P_DEVICE
	IftypeOCB       = 11 // NL80211_IFTYPE_OCB
	IftypeNAN       = 12 // NL80211_IFTYPE_NAN
	// iftypeLimit bounds the iftype numbers we keep: the kernel has 13
	// today; 64 leaves room for new ones without trusting a driver's u16.
	iftypeLimit = 64
)

// Interface combinations (enum nl80211_if_combination_attrs and
// nl80211_iface_limit_attrs).
const (
	combLimits      = 1 // NL80211_IFACE_COMB_LIMITS, nested array
	combMaxNum      = 2 // NL80211_IFACE_COMB_MAXNUM, u32
	combNumChannels = 4 // NL80211_IFACE_COMB_NUM_CHANNELS, u32
	limitMax        = 1 // NL80211_IFACE_LIMIT_MAX, u32
	limitTypes      = 2 // NL80211_IFACE_LIMIT_TYPES, nested flags
)

// Bands and frequencies (enum nl80211_band_attr, nl80211_frequency_attr).
const (
	bandAttrFreqs    = 1 // NL80211_BAND_ATTR_FREQS, nested array
	freqAttrFreq     = 1 // NL80211_FREQUENCY_ATTR_FREQ, u32 MHz
	freqAttrDisabled = 2 // NL80211_FREQUENCY_ATTR_DISABLED, flag
	freqAttrNoIR     = 3 // NL80211_FREQUENCY_ATTR_NO_IR (was PASSIVE_SCAN, and NO_IBSS shares 3)
	freqAttrRadar    = 5 // NL80211_FREQUENCY_ATTR_RADAR, flag
)

// Feature flags (enum nl80211_feature_flags, a u32) and extended features
// (enum nl80211_ext_feature_index, a bit index into a byte array).
const (
	FeatureSAE        = 1 << 5 // NL80211_FEATURE_SAE: SAE in the host (wpa_supplicant) with the driver's help
	ExtFeatureSAEOffl = 38     // NL80211_EXT_FEATURE_SAE_OFFLOAD: the firmware does SAE (station only)
	maxExtFeatureLen  = 64     // bytes: 512 ext features; the kernel has about 70
)

// Station info (enum nl80211_sta_info).
const (
	staInfoInactiveTime = 1 // NL80211_STA_INFO_INACTIVE_TIME, u32 ms
	staInfoPlinkState   = 6 // NL80211_STA_INFO_PLINK_STATE, u8
	staInfoSignal       = 7 // NL80211_STA_INFO_SIGNAL, s8 dBm
)

// Mesh config (enum nl80211_meshconf_params) and mesh setup
// (enum nl80211_mesh_setup_params).
const (
	meshconfForwarding  = 19 // NL80211_MESHCONF_FORWARDING, u8
	meshSetupUserspAuth = 4  // NL80211_MESH_SETUP_USERSPACE_AUTH, flag
	meshSetupUserspAMPE = 5  // NL80211_MESH_SETUP_USERSPACE_AMPE, flag
	meshSetupUserspMPM  = 7  // NL80211_MESH_SETUP_USERSPACE_MPM, flag
	chanWidth20NoHT     = 0  // NL80211_CHAN_WIDTH_20_NOHT
)

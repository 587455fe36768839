package batadv

// Values from the kernel's uapi header linux/batman_adv.h (Debian 12's
// linux-libc-dev 6.1), printed by compiling a C program against it.

const familyName = "batadv" // BATADV_NL_NAME

// Commands (enum batadv_nl_commands).
const (
	cmdGetMesh             = 1  // BATADV_CMD_GET_MESH
	cmdGetTranstableGlobal = 7  // BATADV_CMD_GET_TRANSTABLE_GLOBAL
	cmdGetOriginators      = 8  // BATADV_CMD_GET_ORIGINATORS
	cmdGetNeighbors        = 9  // BATADV_CMD_GET_NEIGHBORS
	cmdGetGateways         = 10 // BATADV_CMD_GET_GATEWAYS
	cmdSetMesh             = 15 // BATADV_CMD_SET_MESH
)

// Attributes (enum batadv_nl_attrs).
const (
	attrVersion         = 1  // BATADV_ATTR_VERSION, string
	attrAlgoName        = 2  // BATADV_ATTR_ALGO_NAME, string
	attrMeshIfindex     = 3  // BATADV_ATTR_MESH_IFINDEX, u32
	attrMeshIfname      = 4  // BATADV_ATTR_MESH_IFNAME, string
	attrMeshAddress     = 5  // BATADV_ATTR_MESH_ADDRESS, 6 bytes
	attrHardIfindex     = 6  // BATADV_ATTR_HARD_IFINDEX, u32
	attrHardIfname      = 7  // BATADV_ATTR_HARD_IFNAME, string
	attrHardAddress     = 8  // BATADV_ATTR_HARD_ADDRESS, 6 bytes
	attrOrigAddress     = 9  // BATADV_ATTR_ORIG_ADDRESS, 6 bytes
	attrTTAddress       = 16 // BATADV_ATTR_TT_ADDRESS, 6 bytes
	attrTTTTVN          = 17 // BATADV_ATTR_TT_TTVN, u8
	attrTTLastTTVN      = 18 // BATADV_ATTR_TT_LAST_TTVN, u8
	attrTTCRC32         = 19 // BATADV_ATTR_TT_CRC32, u32
	attrTTVID           = 20 // BATADV_ATTR_TT_VID, u16 (see ParseGlobalTT)
	attrTTFlags         = 21 // BATADV_ATTR_TT_FLAGS, u32
	attrFlagBest        = 22 // BATADV_ATTR_FLAG_BEST, flag
	attrLastSeenMsecs   = 23 // BATADV_ATTR_LAST_SEEN_MSECS, u32
	attrNeighAddress    = 24 // BATADV_ATTR_NEIGH_ADDRESS, 6 bytes
	attrTQ              = 25 // BATADV_ATTR_TQ, u8 (BATMAN_IV)
	attrThroughput      = 26 // BATADV_ATTR_THROUGHPUT, u32 in 100 kbit/s (BATMAN_V)
	attrBandwidthUp     = 27 // BATADV_ATTR_BANDWIDTH_UP, u32 in 100 kbit/s
	attrBandwidthDown   = 28 // BATADV_ATTR_BANDWIDTH_DOWN, u32 in 100 kbit/s
	attrRouter          = 29 // BATADV_ATTR_ROUTER, 6 bytes
	attrGWBandwidthDown = 49 // BATADV_ATTR_GW_BANDWIDTH_DOWN, u32 in 100 kbit/s
	attrGWBandwidthUp   = 50 // BATADV_ATTR_GW_BANDWIDTH_UP, u32 in 100 kbit/s
	attrGWMode          = 51 // BATADV_ATTR_GW_MODE, u8 (enum batadv_gw_modes)
	attrGWSelClass      = 52 // BATADV_ATTR_GW_SEL_CLASS, u32
)

// rtnetlink: IFLA_BATADV_ALGO_NAME inside IFLA_INFO_DATA (enum
// batadv_ifla_attrs), and linux/if_link.h's link attributes.
const (
	iflaIfname         = 3  // IFLA_IFNAME
	iflaLinkinfo       = 18 // IFLA_LINKINFO
	iflaInfoKind       = 1  // IFLA_INFO_KIND
	iflaInfoData       = 2  // IFLA_INFO_DATA
	iflaBatadvAlgoName = 1  // IFLA_BATADV_ALGO_NAME, NUL-terminated string
)

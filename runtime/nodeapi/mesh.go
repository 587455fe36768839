package nodeapi

import "time"

// MeshPath is the mesh's status (GET) and MeshSettingsPath its settings
// (GET, PUT) in the API; the panel's Mesh page shows the same.
const (
	MeshPath         = "/api/v1/mesh"
	MeshSettingsPath = "/api/v1/mesh/settings"
)

// Mesh protocols, for MeshSettings.Protocol and Mesh.Protocol.
const (
	MeshBabel  = "babel"      // layer 3: babeld over every mesh interface (the default)
	MeshBatman = "batman-adv" // layer 2: one batman-adv cloud (bat0) over every mesh interface
	MeshBoth   = "both"       // batman-adv cloud, babeld over bat0 and between clouds
)

// Uplink sharing, for MeshSettings.Share.
const (
	ShareAuto = "auto" // share an uplink found by DHCP while the Internet check passes
	ShareOn   = "on"   // share the named or found uplink while the check passes
	ShareOff  = "off"  // never share
)

// Mesh is the mesh as this node sees it: GET /api/v1/mesh, `byz node
// mesh`, the panel's Mesh page.
type Mesh struct {
	// Joined answers "has this node joined a mesh?": at least one
	// neighbour is heard and at least one other node is reachable.
	Joined bool `json:"joined"`
	// Summary says the same in one plain line, with the reason when not
	// joined ("alone: no neighbour heard on eth1, eth2 for 40 s").
	Summary  string `json:"summary"`
	Protocol string `json:"protocol"`
	// Engine is the routing engine's state: "running", "starting",
	// "restarting" (after a crash, with backoff), "failed" or "off";
	// EngineError the last failure.
	Engine      string          `json:"engine"`
	EngineError string          `json:"engine_error,omitempty"`
	Interfaces  []MeshInterface `json:"interfaces"`
	Addresses   MeshAddresses   `json:"addresses"`
	Neighbours  []MeshNeighbour `json:"neighbours"`
	Routes      []MeshRoute     `json:"routes"`
	Gateway     MeshGateway     `json:"gateway"`
	// Keyed is true when a mesh key is set (the key itself is never
	// shown).
	Keyed bool `json:"keyed"`
}

// MeshInterface is one port or radio and what the mesh does with it.
type MeshInterface struct {
	Name string `json:"name"`
	// Kind: "wired", "wifi", or "batman-adv" for the batman-adv cloud
	// (bat0) over the others, listed under the protocols batman-adv and
	// both.
	Kind string `json:"kind"`
	// Mode: "wired", "mesh-point" (802.11s), "ibss" (ad-hoc), "cloud"
	// (bat0), "uplink" (not meshing: this node's way to the Net) or
	// "none".
	Mode    string `json:"mode"`
	Meshing bool   `json:"meshing"`
	// Reason says why it is not meshing, or which mode was chosen and
	// why ("the card offers no mesh point: ad-hoc").
	Reason string `json:"reason,omitempty"`
}

// MeshAddresses are this node's, derived from its mesh identity: a
// mesh address of each family and the client prefixes client access
// hands out.
type MeshAddresses struct {
	IPv4       string `json:"ipv4"`        // "10.23.45.1"
	IPv6       string `json:"ipv6"`        // "fdxx:xxxx:xxxx:172d::1"
	ClientIPv4 string `json:"client_ipv4"` // "10.23.45.0/24"
	ClientIPv6 string `json:"client_ipv6"` // "fdxx:xxxx:xxxx:172d::/64"
	// Claimed is when this node took these addresses; Rolls counts the
	// re-rolls after collisions since its identity was made.
	Claimed time.Time `json:"claimed"`
	Rolls   int       `json:"rolls"`
}

// MeshNeighbour is a router heard directly.
type MeshNeighbour struct {
	Address   string `json:"address"` // link-local, or the batman-adv originator
	Interface string `json:"interface"`
	// Cost is the link cost the engine computed (babel's rxcost-based
	// cost; batman-adv's 255-TQ); lower is better.
	Cost int `json:"cost"`
	// Reach is the hello history as babeld shows it (hex), "" for
	// batman-adv.
	Reach string `json:"reach,omitempty"`
}

// MeshRoute is a route to another node's prefix.
type MeshRoute struct {
	Prefix    string `json:"prefix"`
	Via       string `json:"via"`
	Interface string `json:"interface"`
	Metric    int    `json:"metric"`
	Installed bool   `json:"installed"`
	RouterID  string `json:"router_id,omitempty"`
}

// MeshGateway is the way to the Net: this node's uplink, if it shares
// one, and the gateway it uses.
type MeshGateway struct {
	Share  string `json:"share"`            // the setting: auto, on, off
	Uplink string `json:"uplink,omitempty"` // the uplink interface found or named
	// Sharing is true while this node announces a default route into the
	// mesh; Check is the Internet check's last verdict ("ok", or why not).
	Sharing bool   `json:"sharing"`
	Check   string `json:"check,omitempty"`
	// InUse is the mesh gateway this node's default route goes through
	// (its next hop and the route's metric); "" when it has none or uses
	// its own uplink.
	InUse       string `json:"in_use,omitempty"`
	InUseMetric int    `json:"in_use_metric,omitempty"`
	// The IPv6 side, shared on its own (::/0 and NAT66 of the mesh's ULA):
	// the uplink with an IPv6 default route, whether ::/0 is announced,
	// and the IPv6 check's last verdict.
	UplinkIPv6  string `json:"uplink_ipv6,omitempty"`
	SharingIPv6 bool   `json:"sharing_ipv6"`
	CheckIPv6   string `json:"check_ipv6,omitempty"`
}

// MeshSettings are the mesh's settings: the spec's defaults, changed in
// the panel or by PUT /api/v1/mesh/settings without a reboot. A PUT sends
// the whole object; Key "" with KeepKey true keeps the current key.
type MeshSettings struct {
	Protocol string `json:"protocol"` // babel, batman-adv, both
	SSID     string `json:"ssid"`     // 1 to 32 bytes
	Channel  int    `json:"channel"`  // 2.4 GHz 1–13, or 5 GHz 36–165
	// Interfaces names the mesh interfaces; empty means every wired port
	// that is not an uplink and every radio that can mesh, including
	// ones plugged in later.
	Interfaces []string `json:"interfaces,omitempty"`
	// BabelOnly names, under the protocol both, mesh interfaces kept out
	// of the batman-adv cloud: babeld runs on them directly, between
	// clouds (a wired link to another cloud). Ignored by babel and
	// batman-adv.
	BabelOnly []string `json:"babel_only,omitempty"`
	Share     string   `json:"share"`            // auto, on, off
	Uplink    string   `json:"uplink,omitempty"` // "" finds it (a DHCP default route)
	// Check lists the Internet check's targets ("tcp:HOST:PORT" or an
	// http:// URL), tried through the uplink; empty means the defaults.
	// A mesh whose "Net" is a local server names that server here.
	Check []string `json:"check,omitempty"`
	// Key is the mesh key (babel HMAC, SAE on 802.11s): "" means an open
	// mesh. It is write-only: GET returns it empty and Keyed true.
	Key     string `json:"key,omitempty"`
	KeepKey bool   `json:"keep_key,omitempty"`
	Keyed   bool   `json:"keyed,omitempty"`
}

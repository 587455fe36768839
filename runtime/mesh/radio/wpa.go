package radio

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrKey refuses a mesh key that cannot be used.
var ErrKey = errors.New("invalid mesh key")

// maxKeyLen bounds the mesh key: SAE itself has no limit, but a key typed
// into a panel has no business being longer.
const maxKeyLen = 128

// WPASupplicantMeshConfig writes the wpa_supplicant configuration for a
// keyed 802.11s mesh: SAE authentication and the mesh peering with AMPE
// encryption run in wpa_supplicant (the kernel only offers
// NL80211_FEATURE_SAE and user-space peering), so with a key it is
// wpa_supplicant, not JoinMesh, that joins. mesh_fwding=0 keeps the card's
// own forwarding off, as JoinMesh does; user_mpm=1 lets wpa_supplicant do
// the peering that AMPE needs. SSID and key are written hex-encoded, which
// wpa_supplicant accepts for string fields, so no byte of either can break
// the file's quoting. ctrlDir is wpa_supplicant's control socket directory.
//
// The supervisor that runs wpa_supplicant -i IFACE -D nl80211 -c FILE is
// the mesh manager's (a sibling package); this package only makes the file.
func WPASupplicantMeshConfig(ctrlDir, meshID string, channel int, key string) ([]byte, error) {
	if err := ValidateSSID(meshID); err != nil {
		return nil, err
	}
	mhz, err := ChannelFreq(channel)
	if err != nil {
		return nil, err
	}
	switch {
	case key == "":
		return nil, fmt.Errorf("%w: empty (an open mesh needs no wpa_supplicant)", ErrKey)
	case len(key) > maxKeyLen:
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrKey, len(key), maxKeyLen)
	case strings.IndexByte(key, 0) >= 0:
		// wpa_supplicant takes the password as a C string: a NUL would
		// silently cut the key short.
		return nil, fmt.Errorf("%w: contains a NUL byte", ErrKey)
	}
	if strings.ContainsAny(ctrlDir, "\n\r\x00") || ctrlDir == "" {
		return nil, fmt.Errorf("wpa_supplicant control directory %q: empty or has a line break", ctrlDir)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ctrl_interface=%s\n", ctrlDir)
	b.WriteString("user_mpm=1\n")
	b.WriteString("network={\n")
	fmt.Fprintf(&b, "\tssid=%s\n", hex.EncodeToString([]byte(meshID)))
	b.WriteString("\tmode=5\n") // WPAS_MODE_MESH
	fmt.Fprintf(&b, "\tfrequency=%d\n", mhz)
	b.WriteString("\tkey_mgmt=SAE\n")
	fmt.Fprintf(&b, "\tsae_password=%s\n", hex.EncodeToString([]byte(key)))
	b.WriteString("\tieee80211w=2\n") // SAE mesh peers protect management frames
	b.WriteString("\tmesh_fwding=0\n")
	b.WriteString("}\n")
	return []byte(b.String()), nil
}

// SAEKernelModules are the crypto templates mac80211 asks for when
// wpa_supplicant installs a keyed mesh's keys (CCMP, BIP-CMAC, GCMP). A
// node without modprobe cannot load them on demand, and then every key
// addition fails: the peers reach ESTAB but cannot read each other's
// frames (found in ci/meshguest). byzd loads them up front.
var SAEKernelModules = []string{"ctr", "ccm", "cmac", "gcm", "ghash_generic"}

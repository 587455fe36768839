package netcfg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
)

// arphrdEther is ARPHRD_ETHER from <linux/if_arp.h>, the value of
// /sys/class/net/X/type for Ethernet; loopback is 772, tunnels others.
const arphrdEther = "1"

// WiredInterfaces lists, sorted, the interfaces under sysDir/class/net that
// are Ethernet (type ARPHRD_ETHER) and not wireless. Wifi cards are also
// ARPHRD_ETHER, so they are told apart by the wireless/ directory (wext)
// or phy80211 link (cfg80211) sysfs gives them: they belong to the mesh,
// which configures them itself, later.
func WiredInterfaces(sysDir string) ([]string, error) {
	base := filepath.Join(sysDir, "class", "net")
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("netcfg: listing interfaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		dir := filepath.Join(base, e.Name())
		typ, err := os.ReadFile(filepath.Join(dir, "type"))
		if err != nil || strings.TrimSpace(string(typ)) != arphrdEther {
			continue
		}
		if exists(filepath.Join(dir, "wireless")) || exists(filepath.Join(dir, "phy80211")) {
			continue
		}
		if isMeshCloud(e.Name()) {
			continue
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

// isMeshCloud reports whether name is a batman-adv soft interface (bat0),
// an Ethernet-typed link the mesh makes over its ports: DHCP there would
// take whatever a node of the cloud hands out for an uplink. The ports
// under it keep theirs: a DHCP answer on a port is how an uplink is
// found. A name that is no link here (a test's sysfs) is not one.
func isMeshCloud(name string) bool {
	l, err := netlink.LinkByName(name)
	return err == nil && l.Type() == "batadv"
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

func (n *nodeCLI) meshCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "mesh",
		Short: "Show the mesh: whether the node joined one, its neighbours, routes and gateway",
		Long: `Show the mesh as the node sees it. The first line answers "has this node joined
a mesh?" (it has when it hears at least one neighbour and reaches another
node); then the routing protocol and engine, each port and radio and why it
meshes or not, the node's own addresses and the client networks it hands
out, the neighbours heard directly with their link cost (lower is better),
the routes to other nodes, and the Internet: whether this node shares its
uplink with the mesh, and which gateway it uses.

'byz node mesh settings' shows the settings, 'byz node mesh set' changes
them without a reboot.`,
		Example: `  byz node mesh
  byz node mesh --json | jq -r .summary
  byz node mesh --json | jq '.neighbours | length'
  byz node --url https://10.0.0.1 --fingerprint 4D:43:… mesh`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var m nodeapi.Mesh
			if done, err := n.call(cmd, http.MethodGet, nodeapi.MeshPath, &m); done || err != nil {
				return err
			}
			writeMesh(cmd.OutOrStdout(), m)
			return nil
		},
	}
	c.AddCommand(n.meshSettingsCmd(), n.meshSetCmd())
	return c
}

func (n *nodeCLI) meshSettingsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "settings",
		Short: "Show the mesh's settings (never the key itself)",
		Example: `  byz node mesh settings
  byz node mesh settings --json`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var s nodeapi.MeshSettings
			if done, err := n.call(cmd, http.MethodGet, nodeapi.MeshSettingsPath, &s); done || err != nil {
				return err
			}
			writeMeshSettings(cmd.OutOrStdout(), s)
			return nil
		},
	}
}

// meshSetFlags are byz node mesh set's: only the flags given change.
type meshSetFlags struct {
	protocol, ssid, share, uplink, keyFile string
	channel                                int
	interfaces                             []string
	babelOnly                              []string
	allInterfaces, findUplink, open        bool
}

func (n *nodeCLI) meshSetCmd() *cobra.Command {
	var f meshSetFlags
	c := &cobra.Command{
		Use:   "set [flags]",
		Short: "Change the mesh's settings, without a reboot",
		Long: `Change the mesh's settings: the flags given change, the others keep their
value. byzd checks them (a wrong channel or SSID is refused, naming it),
keeps them with the node's state (across reboots when persistence is on)
and applies them at once.

The mesh key keeps strangers' routers out: babel's packets are signed with
it, and 802.11s radios use it where the card supports SAE. The mesh is open
by default: anyone's router can join it. With a key, every node needs the
same one, and a node without it cannot join. The key is read from a file
(--key-file FILE, or --key-file - for standard input), never from the
command line, where other users and the shell's history would see it; one
trailing newline is dropped. --open removes it.

Every node of a mesh needs the same protocol, and radios the same SSID and
channel.`,
		Example: `  byz node mesh set --channel 11
  byz node mesh set --protocol both --ssid town-mesh --channel 1
  byz node mesh set --interfaces eth1,wlan0 --share off
  byz node mesh set --all-interfaces --find-uplink
  byz node mesh set --protocol both --babel-only eth2
  printf '%s' 'a long mesh key' | byz node mesh set --key-file -
  byz node mesh set --key-file /root/mesh.key
  byz node mesh set --open`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			if !fl.Changed("protocol") && !fl.Changed("ssid") && !fl.Changed("channel") && !fl.Changed("interfaces") && !fl.Changed("babel-only") &&
				!f.allInterfaces && !fl.Changed("share") && !fl.Changed("uplink") && !f.findUplink && f.keyFile == "" && !f.open {
				return usageError{errors.New("node mesh set: nothing to change: give at least one flag (see byz node mesh set --help)")}
			}
			for _, pair := range [][2]string{{"interfaces", "all-interfaces"}, {"uplink", "find-uplink"}, {"key-file", "open"}} {
				if fl.Changed(pair[0]) && fl.Changed(pair[1]) {
					return usageError{fmt.Errorf("node mesh set: --%s and --%s: give one", pair[0], pair[1])}
				}
			}
			s, err := n.client.MeshSettings(cmd.Context())
			if err != nil {
				return fmt.Errorf("node mesh set: %w", err)
			}
			s.Keyed, s.KeepKey = false, true
			if fl.Changed("protocol") {
				s.Protocol = f.protocol
			}
			if fl.Changed("ssid") {
				s.SSID = f.ssid
			}
			if fl.Changed("channel") {
				s.Channel = f.channel
			}
			if fl.Changed("interfaces") {
				s.Interfaces = f.interfaces
			}
			if f.allInterfaces {
				s.Interfaces = nil
			}
			if fl.Changed("babel-only") {
				s.BabelOnly = f.babelOnly
			}
			if fl.Changed("share") {
				s.Share = f.share
			}
			if fl.Changed("uplink") {
				s.Uplink = f.uplink
			}
			if f.findUplink {
				s.Uplink = ""
			}
			if f.open {
				s.KeepKey = false
			}
			if f.keyFile != "" {
				key, err := readMeshKey(f.keyFile, cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("node mesh set: %w", err)
				}
				s.Key, s.KeepKey = key, false
			}
			// byzd checks too; checking here names the flag, before a
			// round trip.
			if err := meshcfg.ValidateSettings(s); err != nil {
				return usageError{fmt.Errorf("node mesh set: %w", err)}
			}
			body, err := n.client.Call(cmd.Context(), http.MethodPut, nodeapi.MeshSettingsPath, s, &s)
			if err != nil {
				return fmt.Errorf("node mesh set: %w", err)
			}
			if n.asJSON {
				return writeIndented(cmd.OutOrStdout(), body)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "The mesh settings were saved and applied:")
			writeMeshSettings(cmd.OutOrStdout(), s)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.protocol, "protocol", "", "babel, batman-adv or both")
	fl.StringVar(&f.ssid, "ssid", "", "the radios' mesh name (1 to 32 bytes)")
	fl.IntVar(&f.channel, "channel", 0, "the radios' channel: 1 to 13 (2.4 GHz) or 36 to 165 (5 GHz)")
	fl.StringSliceVar(&f.interfaces, "interfaces", nil, "mesh on these interfaces only (comma-separated)")
	fl.BoolVar(&f.allInterfaces, "all-interfaces", false, "mesh on every port and radio that can, plugged in later too")
	fl.StringSliceVar(&f.babelOnly, "babel-only", nil, "with --protocol both: keep these out of the batman-adv cloud, babeld on them directly (between clouds); \"\" for none")
	fl.StringVar(&f.share, "share", "", "share this node's uplink with the mesh: auto, on or off")
	fl.StringVar(&f.uplink, "uplink", "", "the interface that leads to the Internet")
	fl.BoolVar(&f.findUplink, "find-uplink", false, "find the uplink (a default route from DHCP)")
	fl.StringVar(&f.keyFile, "key-file", "", "read the mesh key from FILE (- for standard input)")
	fl.BoolVar(&f.open, "open", false, "remove the mesh key: an open mesh")
	return c
}

// readMeshKey reads a key from path ("-": in), at most meshcfg.MaxKey
// bytes and one trailing newline.
func readMeshKey(path string, in io.Reader) (string, error) {
	r := in
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("the key file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, meshcfg.MaxKey+3))
	if err != nil {
		return "", fmt.Errorf("the key file: %w", err)
	}
	key := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if key == "" {
		return "", fmt.Errorf("the key file %s is empty (to remove the key: --open)", path)
	}
	if err := meshcfg.Key(key); err != nil {
		return "", fmt.Errorf("the key in %s: %w", path, err)
	}
	return key, nil
}

// meshLine is the one line that answers "has this node joined a mesh?".
func meshLine(m nodeapi.Mesh) string {
	if m.Joined {
		return fmt.Sprintf("This node has joined a mesh: %d %s heard, %d %s to other nodes.",
			len(m.Neighbours), plural(len(m.Neighbours), "neighbour", "neighbours"), len(m.Routes), plural(len(m.Routes), "route", "routes"))
	}
	why := strings.TrimSuffix(strings.TrimPrefix(m.Summary, "alone: "), ".")
	if why == "" {
		why = "it hears no other node"
	}
	return "This node has not joined a mesh: " + why + "."
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func writeMesh(w io.Writer, m nodeapi.Mesh) {
	fmt.Fprintln(w, meshLine(m))
	if m.Joined && m.Summary != "" {
		fmt.Fprintln(w, "  "+m.Summary)
	}
	key := "none: an open mesh"
	if m.Keyed {
		key = "set: only routers with the same key are neighbours"
	}
	engine := m.Engine
	if m.EngineError != "" {
		engine += " (" + m.EngineError + ")"
	}
	fmt.Fprintln(w)
	for _, l := range columns([][]string{{"Protocol:", m.Protocol}, {"Engine:", engine}, {"Mesh key:", key}}) {
		fmt.Fprintln(w, l)
	}

	fmt.Fprintln(w, "\nInterfaces:")
	if len(m.Interfaces) == 0 {
		fmt.Fprintln(w, "  none is meshing")
	} else {
		rows := [][]string{{"  NAME", "KIND", "MODE", "MESHING", "WHY"}}
		for _, i := range m.Interfaces {
			rows = append(rows, []string{"  " + i.Name, orDash(i.Kind), orDash(i.Mode), yesNo(i.Meshing), orDash(i.Reason)})
		}
		printLines(w, columns(rows))
	}

	fmt.Fprintln(w, "\nAddresses:")
	a := m.Addresses
	if a.IPv4 == "" && a.IPv6 == "" {
		fmt.Fprintln(w, "  none yet")
	} else {
		rows := [][]string{{"  mesh IPv4:", orDash(a.IPv4)}, {"  mesh IPv6:", orDash(a.IPv6)},
			{"  clients IPv4:", orDash(a.ClientIPv4)}, {"  clients IPv6:", orDash(a.ClientIPv6)}}
		if !a.Claimed.IsZero() {
			taken := a.Claimed.UTC().Format("2006-01-02 15:04 UTC")
			if a.Rolls > 0 {
				taken += fmt.Sprintf(" (changed %d %s after a clash)", a.Rolls, plural(a.Rolls, "time", "times"))
			}
			rows = append(rows, []string{"  taken:", taken})
		}
		printLines(w, columns(rows))
	}

	fmt.Fprintln(w, "\nNeighbours:")
	if len(m.Neighbours) == 0 {
		fmt.Fprintln(w, "  none heard")
	} else {
		rows := [][]string{{"  ADDRESS", "INTERFACE", "COST", "REACH"}}
		for _, nb := range m.Neighbours {
			rows = append(rows, []string{"  " + nb.Address, nb.Interface, fmt.Sprint(nb.Cost), orDash(nb.Reach)})
		}
		printLines(w, columns(rows))
	}

	fmt.Fprintln(w, "\nRoutes:")
	if len(m.Routes) == 0 {
		fmt.Fprintln(w, "  none to another node")
	} else {
		rows := [][]string{{"  PREFIX", "VIA", "INTERFACE", "METRIC", "INSTALLED"}}
		for _, r := range m.Routes {
			rows = append(rows, []string{"  " + r.Prefix, orDash(r.Via), orDash(r.Interface), fmt.Sprint(r.Metric), yesNo(r.Installed)})
		}
		printLines(w, columns(rows))
	}

	fmt.Fprintln(w, "\nInternet:")
	if m.Engine == "off" && !m.Gateway.Sharing {
		// Without a manager nothing is known of the uplink.
		fmt.Fprintln(w, "  Not shared: the mesh manager is not running.")
		return
	}
	for _, l := range gatewayLines(m.Gateway) {
		fmt.Fprintln(w, "  "+l)
	}
}

// gatewayLines say plainly whether the node shares its uplink, why not,
// and how it reaches the Internet.
func gatewayLines(g nodeapi.MeshGateway) []string {
	var out []string
	if g.Sharing {
		out = append(out, fmt.Sprintf("This node shares its Internet connection (%s) with the mesh.", g.Uplink))
	} else {
		why := ""
		switch {
		case g.Share == nodeapi.ShareOff:
			why = "sharing is off (byz node mesh set --share auto)"
		case g.Uplink == "":
			why = "it has no uplink"
		case g.Check != "":
			why = fmt.Sprintf("it has an uplink (%s), but the Internet check fails: %s", g.Uplink, g.Check)
		default:
			why = fmt.Sprintf("it has an uplink (%s); the Internet check has not passed yet", g.Uplink)
		}
		out = append(out, "This node does not share an Internet connection with the mesh: "+why+".")
	}
	switch {
	case g.SharingIPv6:
		out = append(out, fmt.Sprintf("It shares IPv6 too (%s).", g.UplinkIPv6))
	case g.UplinkIPv6 != "" && g.CheckIPv6 != "":
		out = append(out, fmt.Sprintf("It does not share IPv6: the IPv6 check through %s fails: %s.", g.UplinkIPv6, g.CheckIPv6))
	}
	switch {
	case g.InUse != "":
		out = append(out, fmt.Sprintf("It reaches the Internet through the mesh gateway %s (metric %d).", g.InUse, g.InUseMetric))
	case g.Sharing:
		out = append(out, "It reaches the Internet through its own uplink.")
	default:
		out = append(out, "No node of the mesh offers it an Internet connection now.")
	}
	return out
}

func writeMeshSettings(w io.Writer, s nodeapi.MeshSettings) {
	ifaces := "all that can mesh"
	if len(s.Interfaces) > 0 {
		ifaces = strings.Join(s.Interfaces, ",")
	}
	uplink := s.Uplink
	if uplink == "" {
		uplink = "found by DHCP"
	}
	key := "none (an open mesh)"
	if s.Keyed {
		key = "set"
	}
	rows := [][]string{{"Protocol:", s.Protocol}, {"SSID:", s.SSID}, {"Channel:", fmt.Sprint(s.Channel)}, {"Interfaces:", ifaces}}
	if len(s.BabelOnly) > 0 {
		rows = append(rows, []string{"Babel only:", strings.Join(s.BabelOnly, ",") + " (kept out of the batman-adv cloud under both)"})
	}
	rows = append(rows, []string{"Share:", s.Share}, []string{"Uplink:", uplink}, []string{"Mesh key:", key})
	printLines(w, columns(rows))
}

func printLines(w io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

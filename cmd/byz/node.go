package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"byzantium/internal/bytesize"
	"byzantium/runtime/nodeapi"
)

// nodeCLI is what the node subcommands share: the persistent flags, and
// the client PersistentPreRunE makes from them.
type nodeCLI struct {
	conn   nodeConn
	asJSON bool
	client *nodeapi.Client
}

func newNodeCmd() *cobra.Command {
	n := &nodeCLI{}
	c := &cobra.Command{
		Use:   "node",
		Short: "Manage a running node through byzd: status, mesh, modules, services, logs",
		Long: `Ask byzd, the node daemon, about the node and tell it what to do.

On the node itself, byz talks to byzd over its unix socket (` + nodeapi.DefaultSocket + `),
which only root can use; no login is needed. From another machine, give
--url https://HOST[:PORT] with an API token (--token, or BYZ_TOKEN in the
environment: make one on the panel's Tokens page) and the fingerprint of the
node's certificate (--fingerprint). The certificate is self-signed: byz
trusts exactly the one whose fingerprint you give, and nothing else.

` + fingerprintHelp + `

--json prints byzd's JSON answer, for scripts.`,
		Example: `  byz node status
  byz node services --json | jq '.[] | select(.state == "failed") | .name'
  BYZ_TOKEN=byz_… byz node --url https://10.0.0.1 --fingerprint 4D:43:… modules`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if n.conn.URL != "" && cmd.Flags().Changed("socket") {
				return usageError{errors.New("node: --url and --socket: give one (the socket is for this node, --url for another)")}
			}
			var err error
			n.client, err = n.conn.client()
			return err
		},
	}
	pf := c.PersistentFlags()
	pf.StringVar(&n.conn.URL, "url", "", "a remote node's API, https://HOST[:PORT] (default: this node's local socket)")
	pf.StringVar(&n.conn.Socket, "socket", nodeapi.DefaultSocket, "byzd's local socket")
	pf.StringVar(&n.conn.Token, "token", "", "an API token for --url (default $BYZ_TOKEN)")
	pf.StringVar(&n.conn.Fingerprint, "fingerprint", "", "the SHA-256 fingerprint of the node's certificate, for --url")
	pf.BoolVar(&n.asJSON, "json", false, "print byzd's JSON answer instead of text")
	c.AddCommand(n.statusCmd(), n.modulesCmd(), n.activateCmd(), n.deactivateCmd(),
		n.servicesCmd(), n.serviceCmd("enable"), n.serviceCmd("disable"), n.serviceCmd("restart"), n.logsCmd(), n.meshCmd())
	return c
}

// call sends a request and decodes the answer into out, or with --json
// prints it; printed reports whether it did.
func (n *nodeCLI) call(cmd *cobra.Command, method, path string, out any) (printed bool, err error) {
	body, err := n.client.Call(cmd.Context(), method, path, nil, out)
	if err != nil {
		return false, fmt.Errorf("node %s: %w", cmd.Name(), err)
	}
	if n.asJSON {
		return true, writeIndented(cmd.OutOrStdout(), body)
	}
	return false, nil
}

func (n *nodeCLI) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node at a glance: uptime, load, memory, storage, persistence, network",
		Example: `  byz node status
  byz node status --json | jq .persistence`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st nodeapi.Status
			if done, err := n.call(cmd, http.MethodGet, "/api/v1/status", &st); done || err != nil {
				return err
			}
			writeStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
}

func (n *nodeCLI) modulesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "modules",
		Short: "List the modules on the boot media and their state",
		Long: `List the modules on the boot media. STATE is "loaded" (stacked at boot),
"active" (an optional module activated since) or "available" (not in use).`,
		Example: `  byz node modules
  byz node modules --json | jq -r '.[] | select(.folder == "optional") | .name'`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var mods []nodeapi.ModuleInfo
			if done, err := n.call(cmd, http.MethodGet, "/api/v1/modules", &mods); done || err != nil {
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tVERSION\tFOLDER\tSTATE\tDEPENDS\tSERVICES")
			for _, m := range mods {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, orDash(m.Version), m.Folder, moduleState(m),
					list(m.Depends), list(m.Services))
			}
			return tw.Flush()
		},
	}
}

func moduleState(m nodeapi.ModuleInfo) string {
	switch {
	case m.Loaded:
		return "loaded"
	case m.Active:
		return "active"
	}
	return "available"
}

func (n *nodeCLI) activateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "activate NAME",
		Short: "Activate an optional module, and the modules it needs",
		Long: `Stack an optional module (and, first, the optional modules it depends on) into
the running system, and start the services it brings that are enabled. It
stays active until deactivated or until the node reboots.`,
		Example: `  byz node activate ngircd
  byz node --url https://10.0.0.1 --fingerprint 4D:43:… activate ngircd`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ch nodeapi.ModuleChange
			if done, err := n.call(cmd, http.MethodPost, "/api/v1/modules/"+url.PathEscape(args[0])+"/activate", &ch); done || err != nil {
				return err
			}
			writeChange(cmd.OutOrStdout(), args[0], ch)
			return nil
		},
	}
}

func (n *nodeCLI) deactivateCmd() *cobra.Command {
	var cascade, yes bool
	c := &cobra.Command{
		Use:   "deactivate NAME [--cascade [--yes]]",
		Short: "Deactivate an active module, stopping its services",
		Long: `Stop the services of an active module and take it out of the running system.
When other active modules need it, byzd refuses and names them; --cascade
deactivates them too, after asking on the terminal. --yes does not ask (for
scripts; without a terminal, --cascade needs it).`,
		Example: `  byz node deactivate ngircd
  byz node deactivate tls --cascade
  byz node deactivate tls --cascade --yes`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			path := "/api/v1/modules/" + url.PathEscape(name) + "/deactivate"
			cascaded := cascade && yes // no need to ask first
			if cascaded {
				path += "?cascade=true"
			}
			var ch nodeapi.ModuleChange
			body, err := n.client.Call(cmd.Context(), http.MethodPost, path, nil, &ch)
			var ae *nodeapi.Error
			var conflict nodeapi.ModuleConflict
			if !cascaded && errors.As(err, &ae) && ae.Status == http.StatusConflict &&
				json.Unmarshal(ae.Body, &conflict) == nil && len(conflict.RequiredBy) > 0 {
				if !cascade {
					return fmt.Errorf("node deactivate: %w\n%s is needed by: %s\nto deactivate those too: byz node deactivate %s --cascade",
						err, name, strings.Join(conflict.RequiredBy, ", "), name)
				}
				also, derr := n.dependents(cmd.Context(), conflict.RequiredBy)
				if derr != nil {
					return fmt.Errorf("node deactivate: %w", derr)
				}
				if err := confirm(cmd, fmt.Sprintf("deactivating %s also deactivates %s, which depend on it, and stops their services",
					name, strings.Join(also, ", "))); err != nil {
					return err
				}
				body, err = n.client.Call(cmd.Context(), http.MethodPost, path+"?cascade=true", nil, &ch)
			}
			if err != nil {
				return fmt.Errorf("node deactivate: %w", err)
			}
			if n.asJSON {
				return writeIndented(cmd.OutOrStdout(), body)
			}
			writeChange(cmd.OutOrStdout(), name, ch)
			return nil
		},
	}
	c.Flags().BoolVar(&cascade, "cascade", false, "deactivate the modules that need it too")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "with --cascade, do not ask for confirmation")
	return c
}

// dependents returns direct and the modules that, transitively, need
// them: all that a cascade takes down with it.
func (n *nodeCLI) dependents(ctx context.Context, direct []string) ([]string, error) {
	var mods []nodeapi.ModuleInfo
	if _, err := n.client.Call(ctx, http.MethodGet, "/api/v1/modules", nil, &mods); err != nil {
		return nil, err
	}
	by := map[string][]string{}
	for _, m := range mods {
		by[m.Name] = m.RequiredBy
	}
	seen := map[string]bool{}
	var out []string
	queue := append([]string(nil), direct...)
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		if seen[m] {
			continue
		}
		seen[m] = true
		out = append(out, m)
		queue = append(queue, by[m]...)
	}
	return out, nil
}

// confirm tells what is about to happen on the terminal and wants "yes"
// typed back.
func confirm(cmd *cobra.Command, what string) error {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); !ok || !isTerminal(f) {
		return usageError{fmt.Errorf("node %s: %s; not asking without a terminal: add --yes to go on", cmd.Name(), what)}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s%s.\nType yes to go on: ", strings.ToUpper(what[:1]), what[1:])
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("node %s: no answer: nothing done", cmd.Name())
	}
	if strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("node %s: not confirmed: nothing done", cmd.Name())
	}
	return nil
}

// writeChange says what an activation or deactivation did.
func writeChange(w io.Writer, name string, ch nodeapi.ModuleChange) {
	if len(ch.Activated)+len(ch.Deactivated) == 0 {
		fmt.Fprintf(w, "byz: %s: nothing to change\n", name)
	}
	if len(ch.Stopped) > 0 {
		fmt.Fprintf(w, "byz: stopped %s\n", strings.Join(ch.Stopped, ", "))
	}
	if len(ch.Deactivated) > 0 {
		fmt.Fprintf(w, "byz: deactivated %s\n", strings.Join(ch.Deactivated, ", "))
	}
	if len(ch.Activated) > 0 {
		fmt.Fprintf(w, "byz: activated %s\n", strings.Join(ch.Activated, ", "))
	}
}

func (n *nodeCLI) servicesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "services",
		Short: "List the services byzd supervises and their state",
		Long: `List the services the node's modules declare. STATE is byzd's ("stopped",
"starting", "running", "backoff", "failed"), or "unavailable" while the
module that brings the service is not loaded or active. The last error of a
failing service is shown below the table.`,
		Example: `  byz node services
  byz node services --json | jq '.[] | {name, state, last_error}'`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var svcs []nodeapi.ServiceInfo
			if done, err := n.call(cmd, http.MethodGet, "/api/v1/services", &svcs); done || err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			tw := newTable(w)
			fmt.Fprintln(tw, "NAME\tMODULE\tENABLED\tSTATE\tHEALTH\tPORTS\tRESTARTS")
			for _, s := range svcs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", s.Name, s.Module, yesNo(s.Enabled), serviceState(s),
					orDash(s.Health), list(s.Ports), s.Restarts)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, s := range svcs {
				if s.LastError != "" && (s.State == "failed" || s.State == "backoff") {
					fmt.Fprintf(w, "%s: %s\n", s.Name, s.LastError)
				}
			}
			return nil
		},
	}
}

func serviceState(s nodeapi.ServiceInfo) string {
	if !s.Available {
		return "unavailable"
	}
	return s.State
}

// serviceCmd is enable, disable or restart: one POST, one ServiceInfo.
func (n *nodeCLI) serviceCmd(action string) *cobra.Command {
	var short, long, done string
	switch action {
	case "enable":
		short, done = "Enable a service: start it now and whenever its module is active", "enabled"
		long = `Mark the service enabled (kept across reboots) and start it if its module is
loaded or active.`
	case "disable":
		short, done = "Disable a service: stop it and keep it stopped", "disabled"
		long = `Mark the service disabled (kept across reboots) and stop it.`
	case "restart":
		short, done = "Restart a running service", "restarted"
		long = `Stop the service and start it again (its restart count is not reset).`
	}
	return &cobra.Command{
		Use:     action + " NAME",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  byz node %s ngircd\n  byz node %s ngircd --json | jq .state", action, action),
		Args:    argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var s nodeapi.ServiceInfo
			path := "/api/v1/services/" + url.PathEscape(args[0]) + "/" + action
			if printed, err := n.call(cmd, http.MethodPost, path, &s); printed || err != nil {
				return err
			}
			line := fmt.Sprintf("byz: %s %s: %s", done, s.Name, serviceState(s))
			if s.PID != 0 {
				line += fmt.Sprintf(" (pid %d)", s.PID)
			}
			if s.LastError != "" {
				line += "; last error: " + s.LastError
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
			return nil
		},
	}
}

func (n *nodeCLI) logsCmd() *cobra.Command {
	var last int
	c := &cobra.Command{
		Use:   "logs [NAME] [--last N]",
		Short: "Show a service's log, or byzd's own",
		Long: `Show the log byzd keeps of the service NAME (its output, one record a line),
or without NAME byzd's own log. Both are kept in memory, a bounded number of
lines each, and start again at each boot.`,
		Example: `  byz node logs
  byz node logs ngircd --last 20`,
		Args: argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if last < 0 {
				return usageError{fmt.Errorf("node logs: --last %d: want a count of lines", last)}
			}
			path := "/api/v1/logs"
			if len(args) == 1 {
				path = "/api/v1/services/" + url.PathEscape(args[0]) + "/logs"
			}
			if last > 0 {
				path += "?last=" + strconv.Itoa(last)
			}
			var lines []nodeapi.LogLine
			if done, err := n.call(cmd, http.MethodGet, path, &lines); done || err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			for _, l := range lines {
				fmt.Fprintf(w, "%s %-5s %s\n", l.Time.UTC().Format("2006-01-02 15:04:05Z07:00"), l.Level, l.Message)
			}
			return w.Flush()
		},
	}
	c.Flags().IntVarP(&last, "last", "n", 0, "only the last N lines (default: all that are kept)")
	return c
}

// writeStatus prints the status as "key  value" lines, the persistence
// warning first.
func writeStatus(w io.Writer, st nodeapi.Status) {
	if p := st.Persistence; p != nil && p.Warning != "" {
		fmt.Fprintf(w, "WARNING: persistence is OFF: %s\nWARNING: changes made now are lost at shutdown\n\n", p.Warning)
	}
	kv := func(key string, lines ...string) {
		if len(lines) == 0 {
			lines = []string{"-"}
		}
		for i, l := range lines {
			if i > 0 {
				key = ""
			}
			fmt.Fprintf(w, "%-13s%s\n", key, l)
		}
	}
	kv("node", orDash(st.Node))
	kv("version", orDash(st.Version))
	kv("uptime", uptime(st.UptimeSeconds))
	kv("load", fmt.Sprintf("%.2f %.2f %.2f", st.Load[0], st.Load[1], st.Load[2]))
	kv("memory", fmt.Sprintf("%s available of %s", bytesize.Format(int64(st.Memory.AvailableBytes)), bytesize.Format(int64(st.Memory.TotalBytes))))
	var rows [][]string
	for _, s := range st.Storage {
		rows = append(rows, []string{s.Name, s.Path, fmt.Sprintf("%s free of %s", bytesize.Format(int64(s.FreeBytes)), bytesize.Format(int64(s.SizeBytes)))})
	}
	kv("storage", columns(rows)...)
	kv("persistence", persistence(st.Persistence))
	rows = nil
	for _, i := range st.Interfaces {
		state := "down"
		if i.Up {
			state = "up"
		}
		rows = append(rows, []string{i.Name, state, orDash(i.MAC), strings.Join(i.Addresses, " ")})
	}
	kv("interfaces", columns(rows)...)
	if len(st.Modules) > 0 {
		kv("modules", strings.Join(st.Modules, " "))
	}
}

// persistence describes where the node keeps its changes.
func persistence(p *nodeapi.Persistence) string {
	if p == nil {
		return "unknown (not booted by byz-init)"
	}
	var s string
	switch p.Mode {
	case "ram", "fresh":
		s = "OFF: changes live in RAM"
		if p.SizeBytes > 0 {
			s += fmt.Sprintf(" (%s free of %s)", bytesize.Format(int64(p.FreeBytes)), bytesize.Format(int64(p.SizeBytes)))
		}
		s += " and are lost at shutdown"
		if p.Mode == "fresh" {
			s += " (byz.fresh)"
		}
		if p.Store != "" {
			enc := ""
			if p.Encrypted {
				enc = " (encrypted)"
			}
			s += fmt.Sprintf("; the store %s%s is not used", p.Store, enc)
		}
		return s
	case "savedat":
		s = "save.dat " + p.Store
	case "device":
		s = "device " + p.Store
	case "dir":
		s = "folder " + p.Store
	case "exit":
		s = fmt.Sprintf("in RAM, saved to %s (%s) at shutdown", p.Store, p.Backing)
	default:
		s = string(p.Mode) + " " + p.Store
	}
	if p.Encrypted {
		s += ", encrypted"
	}
	size, free := p.SizeBytes, p.FreeBytes
	if p.Mode == "exit" {
		size, free = p.StoreSizeBytes, p.StoreFreeBytes
	}
	if size > 0 {
		s += fmt.Sprintf(", %s free of %s", bytesize.Format(int64(free)), bytesize.Format(int64(size)))
	}
	if p.Mode == "exit" {
		switch ls := p.LastSave; {
		case ls == nil:
			s += ", not saved yet"
		case ls.Error != "":
			s += fmt.Sprintf(", the last save (%s) failed: %s", ls.Time.UTC().Format(time.RFC3339), ls.Error)
		default:
			s += ", last saved " + ls.Time.UTC().Format(time.RFC3339)
		}
	}
	return s
}

// uptime formats seconds as "3d 4h 5m".
func uptime(sec int64) string {
	d := time.Duration(sec) * time.Second
	days := int64(d / (24 * time.Hour))
	h := int64(d/time.Hour) % 24
	m := int64(d/time.Minute) % 60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh %dm", days, h, m)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	}
	return fmt.Sprintf("%dm %ds", m, sec%60)
}

// columns aligns rows of cells into lines.
func columns(rows [][]string) []string {
	var b strings.Builder
	tw := newTable(&b)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	if b.Len() == 0 {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return lines
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// list joins names with commas, or is "-".
func list(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

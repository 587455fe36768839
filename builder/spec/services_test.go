package spec

import (
	"path/filepath"
	"reflect"
	"testing"

	"byzantium/modules/manifest"
)

// svcHead is a spec up to a module's services: the service items start on
// line 8, each "      - " putting its first key at column 9.
const svcHead = lName + lKernel + lBase + "optional:\n  - name: irc\n    sources: [inputs/rootfs]\n    services:\n"

// svc is a service item made of lines (the first one after "- ").
func svc(lines ...string) string {
	out := "      - " + lines[0] + "\n"
	for _, l := range lines[1:] {
		out += "        " + l + "\n"
	}
	return out
}

const cmd = "command: [/usr/sbin/ngircd, --nodaemon]"

// TestServices parses a module's services with every key and checks what
// the spec holds, and that the manifest the builder makes of them is valid.
func TestServices(t *testing.T) {
	y := svcHead + svc("name: ngircd",
		"description: IRC server",
		"command: [/usr/sbin/ngircd, --nodaemon, --config, /etc/ngircd/ngircd.conf, '']",
		"user: ircd",
		"capabilities: [CAP_NET_BIND_SERVICE, CAP_NET_ADMIN]",
		"ports: [6667/tcp, 53/udp]",
		"depends: [dns]",
		"environment: {TZ: UTC, EMPTY: '', N: '3'}",
		"config:",
		"  - path: /etc/ngircd/ngircd.conf",
		"    mode: \"0640\"",
		"    template: |",
		"      Name = {{.Node}}.irc.local",
		"      {{with .Data}}PidFile = {{.}}/pid{{end}}",
		"  - path: /etc/motd",
		"    template: ''",
		"data: /var/lib/irc",
		"health: {tcp: '127.0.0.1:6667', expect: ':'}",
		"limits: {memory_mb: 64, processes: 8, open_files: 1024}",
		"privileged: true") +
		svc("name: dns", "command: [/usr/sbin/dnsd]") + lOutputs
	s, err := Parse([]byte(y), filepath.Join("testdata", "snippet.yaml"))
	if err == nil {
		err = s.Validate(Options{})
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	want := []manifest.Service{{
		Name:         "ngircd",
		Description:  "IRC server",
		Command:      []string{"/usr/sbin/ngircd", "--nodaemon", "--config", "/etc/ngircd/ngircd.conf", ""},
		User:         "ircd",
		Capabilities: []string{"CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN"},
		Privileged:   true,
		Ports:        []string{"6667/tcp", "53/udp"},
		Depends:      []string{"dns"},
		Environment:  map[string]string{"TZ": "UTC", "EMPTY": "", "N": "3"},
		Config: []manifest.ConfigFile{
			{Path: "/etc/ngircd/ngircd.conf", Mode: "0640",
				Template: "Name = {{.Node}}.irc.local\n{{with .Data}}PidFile = {{.}}/pid{{end}}\n"},
			{Path: "/etc/motd"},
		},
		Data:   "/var/lib/irc",
		Health: &manifest.Health{TCP: "127.0.0.1:6667", Expect: ":"},
		Limits: manifest.Limits{MemoryMB: 64, Processes: 8, OpenFiles: 1024},
	}, {Name: "dns", Command: []string{"/usr/sbin/dnsd"}}}
	if got := s.Optional[0].Services; !reflect.DeepEqual(got, want) {
		t.Errorf("services =\n%+v\nwant\n%+v", got, want)
	}
	mf := &manifest.Manifest{Name: "irc", Services: s.Optional[0].Services}
	if _, err := mf.Marshal(); err != nil {
		t.Errorf("the manifest of these services: %v", err)
	}
	for path, at := range map[string]string{
		"optional[0].services[0].ports[1]":           "testdata/snippet.yaml:13:27",
		"optional[0].services[0].config[0].template": "testdata/snippet.yaml:19:23",
		"optional[0].services[0].environment.N":      "testdata/snippet.yaml:15:43",
	} {
		if got := s.Position(path).String(); got != at {
			t.Errorf("Position(%q) = %s, want %s", path, got, at)
		}
	}
}

func TestInvalidServices(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // "LINE:COL: phrase"
		is         error
	}{
		// Keys and types: Parse.
		{"unknown key", svcHead + svc("name: a", "comand: [/a]") + lOutputs,
			[]string{`8:9: optional[0].services[0]: missing required key "command"`,
				`9:9: unknown key "comand" in optional[0].services[0] (did you mean "command"?)`}, nil},
		{"dash for underscore", svcHead + svc("name: a", cmd, "limits: {memory-mb: 64}") + lOutputs,
			[]string{`10:18: unknown key "memory-mb" in optional[0].services[0].limits (did you mean "memory_mb"?)`}, nil},
		{"command as a string", svcHead + svc("name: a", "command: /usr/sbin/ngircd -n") + lOutputs,
			[]string{`9:18: optional[0].services[0].command: want a list, got a string (write the program and each argument as items: [/usr/sbin/ngircd, -n])`}, nil},
		{"port as a number", svcHead + svc("name: a", cmd, "ports: [6667]") + lOutputs,
			[]string{`10:17: optional[0].services[0].ports[0]: want NUMBER/tcp or NUMBER/udp, got a number (write 6667/tcp)`}, nil},
		{"mode as a number", svcHead + svc("name: a", cmd, "config: [{path: /x, mode: 0644, template: x}]") + lOutputs,
			[]string{`10:35: optional[0].services[0].config[0].mode: want a string, got a number (quote it: "0644")`}, nil},
		{"environment value as a number", svcHead + svc("name: a", cmd, "environment: {N: 3}") + lOutputs,
			[]string{`10:26: optional[0].services[0].environment.N: want a string, got a number (quote it: "3")`}, nil},
		{"environment as a list", svcHead + svc("name: a", cmd, "environment: [N=3]") + lOutputs,
			[]string{`10:22: optional[0].services[0].environment: want a mapping of names to values, got a list`}, nil},
		{"duplicate environment variable", svcHead + svc("name: a", cmd, "environment: {N: '1', N: '2'}") + lOutputs,
			[]string{`10:31: duplicate key "N" in optional[0].services[0].environment (first at line 10)`}, nil},
		{"template missing", svcHead + svc("name: a", cmd, "config: [{path: /x}]") + lOutputs,
			[]string{`10:18: optional[0].services[0].config[0]: missing required key "template"`}, nil},
		{"limit as a string", svcHead + svc("name: a", cmd, "limits: {processes: many}") + lOutputs,
			[]string{`10:29: optional[0].services[0].limits.processes: want a whole number, got a string`}, nil},
		{"services in a mapping", svcHead + "      name: a\n" + lOutputs,
			[]string{`8:7: optional[0].services: want a list, got a mapping`}, nil},

		// Values: Validate, with the manifest's rules.
		{"bad service name", svcHead + svc("name: Irc", cmd) + lOutputs,
			[]string{`8:15: optional[0].services[0].name: manifest: invalid: irc: service 0: name "Irc"`}, manifest.ErrInvalid},
		{"relative command", svcHead + svc("name: a", "command: [ngircd, -n]") + lOutputs,
			[]string{`9:19: optional[0].services[0].command[0]: manifest: invalid: irc: service a: command must start with an absolute path`}, manifest.ErrInvalid},
		{"empty command", svcHead + svc("name: a", "command: []") + lOutputs,
			[]string{`9:18: optional[0].services[0].command: empty`}, nil},
		{"root", svcHead + svc("name: a", cmd, "user: root") + lOutputs,
			[]string{`10:15: optional[0].services[0].user: manifest: invalid: irc: service a: user "root": a lower-case account name, not root`}, manifest.ErrInvalid},
		{"capability", svcHead + svc("name: a", cmd, "capabilities: [CAP_KILL, net_admin]") + lOutputs,
			[]string{`10:34: optional[0].services[0].capabilities[1]: manifest: invalid: irc: service a: capability "net_admin": write it as CAP_NAME`}, manifest.ErrInvalid},
		{"port without protocol", svcHead + svc("name: a", cmd, "ports: ['6667']") + lOutputs,
			[]string{`10:17: optional[0].services[0].ports[0]: manifest: invalid: irc: service a: port "6667": write it as NUMBER/tcp or NUMBER/udp`}, manifest.ErrInvalid},
		{"web without a socket", svcHead + svc("name: a", cmd, "web: {title: A}") + lOutputs,
			[]string{`10:14: optional[0].services[0].web: manifest: invalid: irc: service a: web: no socket or addr: say where the app listens`}, manifest.ErrInvalid},
		{"web socket outside the data folder", svcHead + svc("name: a", cmd, "web: {socket: /run/a.sock}") + lOutputs,
			[]string{`10:14: optional[0].services[0].web: manifest: invalid: irc: service a: web: socket "/run/a.sock": want it inside the data folder /var/lib/a (the service can create it nowhere else)`}, manifest.ErrInvalid},
		{"web on another host", svcHead + svc("name: a", cmd, "web: {addr: '10.0.0.1:80'}") + lOutputs,
			[]string{`10:14: optional[0].services[0].web: manifest: invalid: irc: service a: web: addr "10.0.0.1:80": want a loopback address and port, such as 127.0.0.1:9000`}, manifest.ErrInvalid},
		{"web name not a label", svcHead + svc("name: a", cmd, "web: {name: My_Wiki, addr: '127.0.0.1:80'}") + lOutputs,
			[]string{`10:14: optional[0].services[0].web: manifest: invalid: irc: service a: web: name "My_Wiki": a host label (lower-case letters, digits, inner dashes): give web.name`}, manifest.ErrInvalid},
		{"fastcgi without root", svcHead + svc("name: a", cmd, "web: {socket: /var/lib/a/s, fastcgi: {index: i.php}}") + lOutputs,
			[]string{`10:46: optional[0].services[0].web.fastcgi: missing required key "root"`}, nil},
		{"web unknown key", svcHead + svc("name: a", cmd, "web: {socket: /var/lib/a/s, prefix: /a/}") + lOutputs,
			[]string{`10:37: unknown key "prefix" in optional[0].services[0].web`}, nil},
		{"depends on itself", svcHead + svc("name: a", cmd, "depends: [a]") + lOutputs,
			[]string{`10:19: optional[0].services[0].depends[0]: manifest: invalid: irc: service a: depends: "a" is not another service's name`}, manifest.ErrInvalid},
		{"depends on a missing service", svcHead + svc("name: a", cmd, "depends: [b]") + lOutputs,
			[]string{`10:19: optional[0].services[0].depends[0]: no service named "b" in this spec`}, nil},
		{"service names are unique in a spec", lName + lKernel + lBase +
			"modules: [{name: one, sources: [inputs/rootfs], services: [{name: a, command: [/a]}]}]\n" +
			"optional: [{name: two, sources: [inputs/rootfs], services: [{name: a, command: [/b]}]}]\n" + lOutputs,
			[]string{`5:68: optional[0].services[0].name: service "a" is already declared at testdata/snippet.yaml:4:67 (modules[0].services[0])`}, nil},
		{"relative config path", svcHead + svc("name: a", cmd, "config: [{path: etc/x, template: x}]") + lOutputs,
			[]string{`10:25: optional[0].services[0].config[0].path: manifest: invalid: irc: service a: config path "etc/x": want an absolute path`}, manifest.ErrInvalid},
		{"one config path twice", svcHead + svc("name: a", cmd, "config: [{path: /x, template: a}, {path: /x, template: b}]") + lOutputs,
			[]string{`10:50: optional[0].services[0].config[1].path: /x is also written by optional[0].services[0].config[0]`}, nil},
		{"mode not octal", svcHead + svc("name: a", cmd, "config: [{path: /x, mode: '0999', template: x}]") + lOutputs,
			[]string{`10:35: optional[0].services[0].config[0].mode: "0999": want octal permission bits`}, nil},
		{"template syntax", svcHead + svc("name: a", cmd, "config: [{path: /x, template: 'Name = {{.Node'}]") + lOutputs,
			[]string{`10:39: optional[0].services[0].config[0].template: template: config:1: unclosed action`}, nil},
		{"template field", svcHead + svc("name: a", cmd, "config: [{path: /x, template: '{{if .Data}}{{$.Nodes}}{{end}}'}]") + lOutputs,
			[]string{`10:39: optional[0].services[0].config[0].template: unknown template field .Nodes: a config template has .Node, .Data, .User and .Lang`}, errTemplateField},
		{"relative data folder", svcHead + svc("name: a", cmd, "data: var/lib/a") + lOutputs,
			[]string{`10:15: optional[0].services[0].data: manifest: invalid: irc: service a: data "var/lib/a": want an absolute path`}, manifest.ErrInvalid},
		{"data folder over /etc", svcHead + svc("name: a", cmd, "data: /etc") + lOutputs,
			[]string{`10:15: optional[0].services[0].data: manifest: invalid: irc: service a: data "/etc": want a folder under /var/lib/, such as /var/lib/a`}, manifest.ErrInvalid},
		{"data folder climbing out", svcHead + svc("name: a", cmd, "data: /var/lib/../../etc") + lOutputs,
			[]string{`10:15: optional[0].services[0].data: manifest: invalid: irc: service a: data "/var/lib/../../etc": want a plain path: no ..`}, manifest.ErrInvalid},
		{"config in the data folder", svcHead + svc("name: a", cmd, "data: /var/lib/a", "config: [{path: /etc/ok, template: x}, {path: /var/lib/a/motd, template: x}]") + lOutputs,
			[]string{`11:55: optional[0].services[0].config[1].path: manifest: invalid: irc: service a: config path "/var/lib/a/motd" is in the data folder /var/lib/a, which the service can write`}, manifest.ErrInvalid},
		{"config in the default data folder", svcHead + svc("name: a", cmd, "config: [{path: /var/lib/a/motd, template: x}]") + lOutputs,
			[]string{`10:25: optional[0].services[0].config[0].path: manifest: invalid: irc: service a: config path "/var/lib/a/motd" is in the data folder /var/lib/a`}, manifest.ErrInvalid},
		{"privileged capability undeclared", svcHead + svc("name: a", cmd, "capabilities: [CAP_NET_BIND_SERVICE, CAP_SYS_ADMIN]") + lOutputs,
			[]string{`10:46: optional[0].services[0].capabilities[1]: manifest: invalid: irc: service a: capability CAP_SYS_ADMIN is privileged: mount, setns, swapon and dozens more: root in all but name; declare the service privileged if it really needs it`}, manifest.ErrInvalid},
		{"unknown capability", svcHead + svc("name: a", cmd, "capabilities: [CAP_ROOT]", "privileged: true") + lOutputs,
			[]string{`10:24: optional[0].services[0].capabilities[0]: manifest: invalid: irc: service a: capability "CAP_ROOT": no such capability`}, manifest.ErrInvalid},
		{"privileged as a string", svcHead + svc("name: a", cmd, "privileged: 'yes'") + lOutputs,
			[]string{`10:21: optional[0].services[0].privileged: want true or false, got a string`}, nil},
		{"health without an address", svcHead + svc("name: a", cmd, "health: {expect: x}") + lOutputs,
			[]string{`10:17: optional[0].services[0].health: no tcp address, and no port`}, nil},
		{"health address", svcHead + svc("name: a", cmd, "health: {tcp: 'localhost'}") + lOutputs,
			[]string{`10:23: optional[0].services[0].health.tcp: "localhost": want HOST:PORT`}, nil},
		{"environment name", svcHead + svc("name: a", cmd, "environment: {1X: a}") + lOutputs,
			[]string{`10:23: optional[0].services[0].environment.1X: "1X" is not a variable name`}, nil},
		{"negative limit", svcHead + svc("name: a", cmd, "limits: {open_files: -1}") + lOutputs,
			[]string{`10:30: optional[0].services[0].limits.open_files: -1: want a positive number`}, nil},
		{"every error", svcHead + svc("name: a", "command: [a]", "ports: [6667/sctp]", "user: Root") + lOutputs,
			[]string{`9:19: optional[0].services[0].command[0]:`, `10:17: optional[0].services[0].ports[0]:`,
				`11:15: optional[0].services[0].user:`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) { expectErrors(t, tc.yaml, tc.want, tc.is) })
	}
}

func TestCheckTemplate(t *testing.T) {
	for text, ok := range map[string]bool{
		"":                                       true,
		"plain {{/* comment */}}":                true,
		"{{.Node}} {{$.Data}}":                   true,
		"{{range $i, $c := .Node}}{{$c}}{{end}}": true,
		`{{define "x"}}{{.Node}}{{end}}{{template "x" .}}`: true,
		"{{printf \"%s.irc\" .Node | html}}":               true,
		"{{.Node.Name}}":                                   true, // wrong, but found only when run
		"{{.node}}":                                        false,
		"{{with .Data}}{{else}}{{.X}}{{end}}":              false,
		`{{define "x"}}{{.Host}}{{end}}`:                   false,
		"{{(.Port)}}":                                      false,
		"{{if}}":                                           false,
	} {
		if err := checkTemplate(text); (err == nil) != ok {
			t.Errorf("checkTemplate(%q) = %v, want ok=%v", text, err, ok)
		}
	}
}

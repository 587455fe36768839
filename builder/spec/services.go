package spec

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"

	"go.yaml.in/yaml/v3"

	"byzantium/modules/manifest"
)

// A module's services: the spec says what manifest.Service says, with the
// same names for keys (the manifest's JSON names, so that memory_mb and
// open_files keep their underscores), and the builder copies them into the
// module's manifest unchanged.

func (d *decoder) services(n *yaml.Node, path string) []manifest.Service {
	items := d.list(n, path)
	if len(items) == 0 {
		return nil
	}
	out := make([]manifest.Service, len(items))
	for i, it := range items {
		s := &out[i]
		d.object(it, fmt.Sprintf("%s[%d]", path, i), []field{
			{"name", true, func(v *yaml.Node, p string) { s.Name, _ = d.str(v, p) }},
			{"description", false, func(v *yaml.Node, p string) { s.Description, _ = d.str(v, p) }},
			{"command", true, func(v *yaml.Node, p string) { s.Command = d.command(v, p) }},
			{"user", false, func(v *yaml.Node, p string) { s.User, _ = d.nonEmpty(v, p) }},
			{"capabilities", false, func(v *yaml.Node, p string) { s.Capabilities = d.names(v, p) }},
			{"privileged", false, func(v *yaml.Node, p string) { s.Privileged = d.boolean(v, p) }},
			{"ports", false, func(v *yaml.Node, p string) { s.Ports = d.ports(v, p) }},
			{"depends", false, func(v *yaml.Node, p string) { s.Depends = d.names(v, p) }},
			{"environment", false, func(v *yaml.Node, p string) { s.Environment = d.environment(v, p) }},
			{"config", false, func(v *yaml.Node, p string) { s.Config = d.configFiles(v, p) }},
			{"data", false, func(v *yaml.Node, p string) { s.Data, _ = d.nonEmpty(v, p) }},
			{"health", false, func(v *yaml.Node, p string) { s.Health = d.health(v, p) }},
			{"limits", false, func(v *yaml.Node, p string) { s.Limits = d.limits(v, p) }},
			{"web", false, func(v *yaml.Node, p string) { s.Web = d.web(v, p) }},
		})
	}
	return out
}

// web reads a service's web app declaration (manifest.Web).
func (d *decoder) web(n *yaml.Node, path string) *manifest.Web {
	w := &manifest.Web{}
	d.object(n, path, []field{
		{"name", false, func(v *yaml.Node, p string) { w.Name, _ = d.nonEmpty(v, p) }},
		{"title", false, func(v *yaml.Node, p string) { w.Title, _ = d.nonEmpty(v, p) }},
		{"socket", false, func(v *yaml.Node, p string) { w.Socket, _ = d.nonEmpty(v, p) }},
		{"addr", false, func(v *yaml.Node, p string) { w.Addr, _ = d.nonEmpty(v, p) }},
		{"fastcgi", false, func(v *yaml.Node, p string) {
			f := &manifest.FastCGI{}
			d.object(v, p, []field{
				{"root", true, func(v *yaml.Node, p string) { f.Root, _ = d.nonEmpty(v, p) }},
				{"index", false, func(v *yaml.Node, p string) { f.Index, _ = d.nonEmpty(v, p) }},
				{"deny", false, func(v *yaml.Node, p string) { f.Deny = d.strs(v, p) }},
				{"static", false, func(v *yaml.Node, p string) { f.Static = d.strs(v, p) }},
			})
			w.FastCGI = f
		}},
		{"health", false, func(v *yaml.Node, p string) { w.Health, _ = d.nonEmpty(v, p) }},
		{"publish", false, func(v *yaml.Node, p string) { w.Publish = d.boolean(v, p) }},
		{"max_body_mb", false, func(v *yaml.Node, p string) { w.MaxBodyMB = d.integer(v, p) }},
		{"concurrent", false, func(v *yaml.Node, p string) { w.Concurrent = d.integer(v, p) }},
		{"per_client", false, func(v *yaml.Node, p string) { w.PerClient = d.integer(v, p) }},
	})
	return w
}

// strs reads a list of non-empty strings.
func (d *decoder) strs(n *yaml.Node, path string) []string {
	var out []string
	for i, it := range d.list(n, path) {
		if s, ok := d.nonEmpty(it, fmt.Sprintf("%s[%d]", path, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

// command reads the program and its arguments; an argument may be empty,
// the program may not.
func (d *decoder) command(n *yaml.Node, path string) []string {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		d.fail(n, path, fmt.Errorf("want a list, got a string (write the program and each argument as items: [%s])",
			strings.Join(strings.Fields(n.Value), ", ")))
		return nil
	}
	var out []string
	for i, it := range d.list(n, path) {
		p := fmt.Sprintf("%s[%d]", path, i)
		if i == 0 {
			if s, ok := d.nonEmpty(it, p); ok {
				out = append(out, s)
			}
		} else if s, ok := d.str(it, p); ok {
			out = append(out, s)
		}
	}
	return out
}

// ports reads "6667/tcp" items; a bare number is the likely mistake.
func (d *decoder) ports(n *yaml.Node, path string) []string {
	var out []string
	for i, it := range d.list(n, path) {
		p := fmt.Sprintf("%s[%d]", path, i)
		if it.Kind == yaml.ScalarNode && it.ShortTag() == "!!int" {
			d.fail(it, p, fmt.Errorf("want NUMBER/tcp or NUMBER/udp, got a number (write %s/tcp)", it.Value))
			continue
		}
		if s, ok := d.nonEmpty(it, p); ok {
			out = append(out, s)
		}
	}
	return out
}

// environment reads a mapping of variable names to string values.
func (d *decoder) environment(n *yaml.Node, path string) map[string]string {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.wrongType(n, path, "a mapping of names to values")
		return nil
	}
	env := map[string]string{}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			d.fail(k, path, fmt.Errorf("want a variable name, got %s", describe(k)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k, "", fmt.Errorf("duplicate key %q in %s (first at line %d)", k.Value, path, first.Line))
			continue
		}
		seen[k.Value] = k
		p := path + "." + k.Value
		d.pos[p] = d.at(k)
		if s, ok := d.str(v, p); ok {
			env[k.Value] = s
		}
	}
	return env
}

func (d *decoder) configFiles(n *yaml.Node, path string) []manifest.ConfigFile {
	items := d.list(n, path)
	if len(items) == 0 {
		return nil
	}
	out := make([]manifest.ConfigFile, len(items))
	for i, it := range items {
		c := &out[i]
		d.object(it, fmt.Sprintf("%s[%d]", path, i), []field{
			{"path", true, func(v *yaml.Node, p string) { c.Path, _ = d.nonEmpty(v, p) }},
			{"mode", false, func(v *yaml.Node, p string) { c.Mode, _ = d.nonEmpty(v, p) }},
			{"template", true, func(v *yaml.Node, p string) { c.Template, _ = d.str(v, p) }},
		})
	}
	return out
}

func (d *decoder) health(n *yaml.Node, path string) *manifest.Health {
	h := &manifest.Health{}
	d.object(n, path, []field{
		{"tcp", false, func(v *yaml.Node, p string) { h.TCP, _ = d.nonEmpty(v, p) }},
		{"expect", false, func(v *yaml.Node, p string) { h.Expect, _ = d.nonEmpty(v, p) }},
	})
	return h
}

func (d *decoder) limits(n *yaml.Node, path string) manifest.Limits {
	var l manifest.Limits
	d.object(n, path, []field{
		{"memory_mb", false, func(v *yaml.Node, p string) { l.MemoryMB = d.integer(v, p) }},
		{"processes", false, func(v *yaml.Node, p string) { l.Processes = d.integer(v, p) }},
		{"open_files", false, func(v *yaml.Node, p string) { l.OpenFiles = d.integer(v, p) }},
	})
	return l
}

// envName is what a variable name may look like in a service's
// environment: a name a shell could set.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// serviceDecl is where a service was declared, for "already declared at".
type serviceDecl struct {
	path string
	svc  *manifest.Service
}

// services checks a module's services with the manifest's own rules, one
// field at a time so each error points at its value, and then the checks
// the manifest leaves to its writer (template syntax, modes, limits, the
// health check's address). Names unique across the spec and dependencies
// are checked by servicesAcross, which needs every module first.
func (v *validator) services(p string, m Module, all map[string]serviceDecl, order *[]string) {
	before := len(v.errs)
	for i := range m.Services {
		s := &m.Services[i]
		sp := fmt.Sprintf("%s.services[%d]", p, i)
		if first, dup := all[s.Name]; dup && s.Name != "" {
			v.failf(sp+".name", "service %q is already declared at %s (%s); service names are unique in a spec",
				s.Name, v.s.Position(first.path+".name"), first.path)
		} else {
			all[s.Name] = serviceDecl{sp, s}
			*order = append(*order, s.Name)
		}
		if !manifest.ValidName(m.Name) {
			continue // reported at the module's name; every probe would fail on it
		}
		v.service(sp, m.Name, s)
	}
	if !manifest.ValidName(m.Name) {
		return
	}
	// The whole manifest's section, as the builder will write it: anything
	// the field checks above do not know about yet still stops the build
	// here rather than after the module is compressed.
	mf := &manifest.Manifest{Name: m.Name, Services: m.Services}
	if err := mf.Validate(); err != nil && len(v.errs) == before {
		v.fail(p+".services", err)
	}
}

// service checks one service. probe validates a manifest holding only the
// given fields of the service (with its real module and service names), so
// a failure belongs to those fields.
func (v *validator) service(sp, module string, s *manifest.Service) {
	probe := func(path string, t manifest.Service) bool {
		if t.Name == "" {
			t.Name = s.Name
		}
		if t.Command == nil {
			t.Command = []string{"/"}
		}
		mf := &manifest.Manifest{Name: module, Services: []manifest.Service{t}}
		if err := mf.Validate(); err != nil {
			v.fail(path, err)
			return false
		}
		return true
	}
	if !probe(sp+".name", manifest.Service{}) {
		return
	}
	if len(s.Command) == 0 {
		v.failf(sp+".command", "empty: want the program (an absolute path) and its arguments")
	} else {
		probe(sp+".command[0]", manifest.Service{Command: s.Command})
	}
	if s.User != "" {
		probe(sp+".user", manifest.Service{User: s.User})
	}
	for j, c := range s.Capabilities {
		probe(fmt.Sprintf("%s.capabilities[%d]", sp, j), manifest.Service{Capabilities: []string{c}, Privileged: s.Privileged})
	}
	for j, port := range s.Ports {
		probe(fmt.Sprintf("%s.ports[%d]", sp, j), manifest.Service{Ports: []string{port}})
	}
	for j, d := range s.Depends {
		probe(fmt.Sprintf("%s.depends[%d]", sp, j), manifest.Service{Depends: []string{d}})
	}
	for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
		if !envName.MatchString(k) {
			v.failf(sp+".environment."+k, "%q is not a variable name: letters, digits and _, not starting with a digit", k)
		} else if strings.ContainsRune(s.Environment[k], 0) {
			v.failf(sp+".environment."+k, "a NUL byte cannot be in an environment variable")
		}
	}
	// The data folder first: a config path is checked against it (never
	// inside it) only when it is valid itself.
	data := ""
	if s.Data != "" && probe(sp+".data", manifest.Service{Data: s.Data}) {
		data = s.Data
	}
	paths := map[string]string{}
	for j, c := range s.Config {
		cp := fmt.Sprintf("%s.config[%d]", sp, j)
		if probe(cp+".path", manifest.Service{Data: data, Config: []manifest.ConfigFile{{Path: c.Path}}}) {
			if first, dup := paths[c.Path]; dup {
				v.failf(cp+".path", "%s is also written by %s", c.Path, first)
			}
			paths[c.Path] = cp
		}
		if c.Mode != "" {
			if m, err := strconv.ParseUint(c.Mode, 8, 32); err != nil || m > 0o7777 {
				v.failf(cp+".mode", "%q: want octal permission bits such as \"0644\"", c.Mode)
			}
		}
		if err := checkTemplate(c.Template); err != nil {
			v.fail(cp+".template", err)
		}
	}
	if h := s.Health; h != nil {
		switch {
		case h.TCP == "" && h.Expect == "":
			v.failf(sp+".health", "empty: give tcp (HOST:PORT), expect, or both")
		case h.TCP == "" && len(s.Ports) == 0:
			v.failf(sp+".health", "no tcp address, and no port to check by default")
		case h.TCP != "":
			if host, port, err := net.SplitHostPort(h.TCP); err != nil || host == "" || !validPort(port) {
				v.failf(sp+".health.tcp", "%q: want HOST:PORT, such as 127.0.0.1:6667", h.TCP)
			}
		}
		if strings.ContainsAny(h.Expect, "\r\n") {
			v.failf(sp+".health.expect", "a line break: expect is a prefix of the first line the server sends")
		}
	}
	if s.Web != nil {
		probe(sp+".web", manifest.Service{Data: data, Web: s.Web})
	}
	for _, l := range []struct {
		key string
		n   int
	}{{"memory_mb", s.Limits.MemoryMB}, {"processes", s.Limits.Processes}, {"open_files", s.Limits.OpenFiles}} {
		if l.n < 0 {
			v.failf(sp+".limits."+l.key, "%d: want a positive number, or 0 (or nothing) for byzd's default", l.n)
		}
	}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536 && strconv.Itoa(n) == s
}

// servicesAcross checks what needs every service of the spec: a service
// may depend only on another declared in the spec.
func (v *validator) servicesAcross(all map[string]serviceDecl, order []string) {
	for _, name := range order {
		decl := all[name]
		for j, dep := range decl.svc.Depends {
			if _, ok := all[dep]; !ok && manifest.ValidName(dep) && dep != name {
				v.failf(fmt.Sprintf("%s.depends[%d]", decl.path, j), "no service named %q in this spec", dep)
			}
		}
	}
}

// TemplateFields are the fields a config template may use: what byzd gives
// it (manifest.TemplateData).
var TemplateFields = manifest.TemplateFields

// errTemplateField reports a template naming a field byzd does not give.
var errTemplateField = errors.New("unknown template field")

// checkTemplate parses a config template as byzd will, and checks that it
// names only the fields byzd gives it. It does not run the template: a
// {{range}} could make that arbitrarily slow, and parsing finds the
// mistakes that matter (syntax, a misspelt {{.Node}}).
func checkTemplate(text string) error {
	t, err := template.New("config").Parse(text)
	if err != nil {
		return err // "template: config:LINE: …"
	}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		if err := checkFields(tt.Root); err != nil {
			return err
		}
	}
	return nil
}

// checkFields walks a template's parse tree for .Field and $.Field
// references. Inside range and with, dot is no longer the top-level data,
// but the data's fields are strings, which have no fields either: every
// reference must name one of TemplateFields.
func checkFields(n parse.Node) error {
	field := func(name string) error {
		for _, f := range TemplateFields {
			if name == f {
				return nil
			}
		}
		n := len(TemplateFields)
		return fmt.Errorf("%w .%s: a config template has .%s and .%s", errTemplateField, name,
			strings.Join(TemplateFields[:n-1], ", ."), TemplateFields[n-1])
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkFields(c); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return checkFields(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := checkFields(c); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if err := checkFields(a); err != nil {
				return err
			}
		}
	case *parse.FieldNode:
		return field(n.Ident[0])
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			return field(n.Ident[1])
		}
	case *parse.ChainNode:
		return checkFields(n.Node)
	case *parse.IfNode:
		return checkBranch(&n.BranchNode)
	case *parse.RangeNode:
		return checkBranch(&n.BranchNode)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode)
	case *parse.TemplateNode:
		return checkFields(n.Pipe)
	}
	return nil
}

func checkBranch(b *parse.BranchNode) error {
	for _, n := range []parse.Node{b.Pipe, b.List, b.ElseList} {
		if err := checkFields(n); err != nil {
			return err
		}
	}
	return nil
}

// Package manifest defines the typed manifest every Byzantium module carries
// inside itself at /usr/share/byzantium/modules/<name>.json: what the module
// is, what it needs and offers, the services it declares and the digests of
// the sources it was built from.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"regexp"
	"strings"
)

// Dir is where manifests live inside a module, without a leading slash.
const Dir = "usr/share/byzantium/modules"

// Path returns the path of the manifest of the module called name.
func Path(name string) string { return Dir + "/" + name + ".json" }

// Manifest describes one module.
type Manifest struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Depends lists module names (or names they provide) that must be
	// stacked below this one.
	Depends []string `json:"depends,omitempty"`
	// Provides lists virtual names this module satisfies.
	Provides []string `json:"provides,omitempty"`
	// Conflicts lists modules that cannot be stacked with this one.
	Conflicts []string  `json:"conflicts,omitempty"`
	Services  []Service `json:"services,omitempty"`
	Sources   []Source  `json:"sources,omitempty"`
}

// Service declares a long-running program the node daemon can supervise,
// each in its own sandbox (issue 5). Unknown keys are rejected so a typo
// does not silently drop a setting.
type Service struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Command is the program and its arguments, as seen inside the
	// service's root (the base, its module and its data folder).
	Command []string `json:"command"`
	// User names the account the service runs as; byzd gives each
	// service user its own uid and gid. "" means the service's name.
	User string `json:"user,omitempty"`
	// Capabilities are the only capabilities the service keeps
	// ("CAP_NET_BIND_SERVICE"); everything else is dropped. The
	// privileged ones (see Capabilities) need Privileged.
	Capabilities []string `json:"capabilities,omitempty"`
	// Privileged declares that the service keeps root-equivalent or
	// node-wide capabilities (CAP_SYS_ADMIN, CAP_NET_ADMIN…): the module
	// author says so out loud, and the panel and API show it.
	Privileged bool `json:"privileged,omitempty"`
	// Ports it listens on: "6667/tcp", "53/udp".
	Ports []string `json:"ports,omitempty"`
	// Depends names services (of any module) that must run first.
	Depends     []string          `json:"depends,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	// Config lists files written into the service's root before each
	// start from Go text/template text, with the fields of TemplateData.
	// They are never inside the data folder: the service can write
	// there, and byzd must not write through what it leaves.
	Config []ConfigFile `json:"config,omitempty"`
	// Data is the folder, inside the service's root, that persists (in
	// the node's persistence store) and that only the service can read;
	// it is under DataPrefix; "" means /var/lib/<name>.
	Data string `json:"data,omitempty"`
	// Health, when set, is how byzd checks that the service works.
	Health *Health `json:"health,omitempty"`
	// Limits bound its resources; zero values mean byzd's defaults.
	Limits Limits `json:"limits,omitempty"`
	// Web, when set, makes the service a web app that byzd serves over
	// HTTPS as its front (runtime/webfront, docs/apps.md).
	Web *Web `json:"web,omitempty"`
}

// Web declares how byzd reaches a web app in its sandbox, and how people
// reach it: by its own name, https://NAME.NODE.byzantium.mesh/, which
// gives each app its own origin in the browser (never the panel's).
type Web struct {
	// Name is the app's label in its host name; "" means the service's
	// name. Title is what the panel and the start page show ("Wiki").
	Name  string `json:"name,omitempty"`
	Title string `json:"title,omitempty"`
	// Socket is the unix socket the app listens on, inside its data
	// folder (the only place the service can create it, and where byzd
	// finds it); Addr a loopback "127.0.0.1:PORT" instead. One of the
	// two.
	Socket string `json:"socket,omitempty"`
	Addr   string `json:"addr,omitempty"`
	// FastCGI, when set, says the socket is a FastCGI responder
	// (php-fpm); otherwise the app speaks HTTP/1.1 and WebSockets.
	FastCGI *FastCGI `json:"fastcgi,omitempty"`
	// Health is the path byzd asks to know the app answers ("/" if
	// empty): 2xx-4xx is up.
	Health string `json:"health,omitempty"`
	// Publish lists the app in the node's start page (and, later, the
	// mesh's directory).
	Publish bool `json:"publish,omitempty"`
	// MaxBodyMB, Concurrent and PerClient bound requests (webfront's
	// Limits); 0 means the front's defaults.
	MaxBodyMB  int `json:"max_body_mb,omitempty"`
	Concurrent int `json:"concurrent,omitempty"`
	PerClient  int `json:"per_client,omitempty"`
}

// FastCGI is a PHP app's side of the front.
type FastCGI struct {
	// Root is the document root inside the service's root
	// ("/usr/share/dokuwiki"); Index the script for a folder ("index.php"
	// if empty).
	Root  string `json:"root"`
	Index string `json:"index,omitempty"`
	// Deny lists paths under Root never served ("conf/", "install.php");
	// Static the extensions served as files (webfront's DefaultStatic if
	// empty).
	Deny   []string `json:"deny,omitempty"`
	Static []string `json:"static,omitempty"`
}

// WebName is the app's host label.
func (s *Service) WebName() string {
	if s.Web != nil && s.Web.Name != "" {
		return s.Web.Name
	}
	return s.Name
}

// DataPrefix is where a service's data folder must be, inside its root:
// the place for a program's state, away from the folders byzd writes
// (/etc/passwd, config files) and from the programs themselves.
const DataPrefix = "/var/lib/"

// DataDir is the service's data folder inside its root.
func (s *Service) DataDir() string {
	if s.Data != "" {
		return s.Data
	}
	return DataPrefix + s.Name
}

// TemplateData is what a service's config templates are given, at each
// start of the service.
type TemplateData struct {
	// Node is the node's name, Data the service's data folder inside its
	// root, User its account.
	Node, Data, User string
	// Lang is the node's language ("en", "es", "fr"), which the panel's
	// settings choose: an app that speaks it starts in it.
	Lang string
}

// TemplateFields are the names of TemplateData's fields: all that a
// config template may use.
var TemplateFields = []string{"Node", "Data", "User", "Lang"}

// ConfigFile is one templated file of a service.
type ConfigFile struct {
	Path     string `json:"path"` // absolute, inside the service's root
	Mode     string `json:"mode,omitempty"`
	Template string `json:"template"`
}

// Health is a service's health check: a TCP connect to an address (the
// first port by default), and optionally a line the server must send
// first.
type Health struct {
	TCP    string `json:"tcp,omitempty"`    // "127.0.0.1:6667"
	Expect string `json:"expect,omitempty"` // a prefix of the first line read
}

// Limits are a service's resource limits.
type Limits struct {
	MemoryMB  int `json:"memory_mb,omitempty"`
	Processes int `json:"processes,omitempty"`
	OpenFiles int `json:"open_files,omitempty"`
}

// Source records one input a module was built from.
type Source struct {
	// Ref is how the user named it: a path, oci:…, docker-archive:…, a
	// registry reference.
	Ref string `json:"ref"`
	// Kind is dir, tar, deb, oci, module.
	Kind string `json:"kind"`
	// SHA256 is the hex digest of the source: of the file's bytes for files,
	// of the image manifest for OCI images, of the entry stream for
	// directories.
	SHA256 string `json:"sha256"`
}

// ErrInvalid reports a manifest that fails validation.
var ErrInvalid = errors.New("manifest: invalid")

// namePattern is what a module or service name may look like: it ends up
// in file names and boot parameters (load=, noload=).
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9+._-]{0,63}$`)

// ValidName reports whether s can name a module.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// Validate checks names, references and digests.
func (m *Manifest) Validate() error {
	if !ValidName(m.Name) {
		return fmt.Errorf("%w: name %q: use lower-case letters, digits and + . _ - (at most 64)", ErrInvalid, m.Name)
	}
	for _, list := range []struct {
		what  string
		names []string
	}{{"depends", m.Depends}, {"provides", m.Provides}, {"conflicts", m.Conflicts}} {
		for _, n := range list.names {
			if !ValidName(n) {
				return fmt.Errorf("%w: %s: %s %q is not a module name", ErrInvalid, m.Name, list.what, n)
			}
			if n == m.Name {
				return fmt.Errorf("%w: %s lists itself in %s", ErrInvalid, m.Name, list.what)
			}
		}
	}
	seen := map[string]bool{}
	for i, s := range m.Services {
		if !ValidName(s.Name) {
			return fmt.Errorf("%w: %s: service %d: name %q", ErrInvalid, m.Name, i, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("%w: %s: service %q declared twice", ErrInvalid, m.Name, s.Name)
		}
		seen[s.Name] = true
		if len(s.Command) == 0 || !strings.HasPrefix(s.Command[0], "/") {
			return fmt.Errorf("%w: %s: service %s: command must start with an absolute path", ErrInvalid, m.Name, s.Name)
		}
		if err := s.validate(); err != nil {
			return fmt.Errorf("%w: %s: service %s: %v", ErrInvalid, m.Name, s.Name, err)
		}
	}
	for _, s := range m.Sources {
		if len(s.SHA256) != 64 || strings.Trim(s.SHA256, "0123456789abcdef") != "" {
			return fmt.Errorf("%w: %s: source %q: sha256 %q is not 64 hex digits", ErrInvalid, m.Name, s.Ref, s.SHA256)
		}
	}
	return nil
}

// Marshal encodes m as indented JSON with a trailing newline, the form
// stored in modules. Field order is fixed by the struct, so the bytes are a
// pure function of m.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("manifest: %s: %w", m.Name, err)
	}
	return buf.Bytes(), nil
}

// Parse decodes and validates a manifest. Unknown fields and trailing data
// are errors: a manifest is written by byz, so anything unexpected means a
// corrupt or foreign file.
func Parse(b []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the manifest object", ErrInvalid)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

var (
	capPattern  = regexp.MustCompile(`^CAP_[A-Z_]+$`)
	portPattern = regexp.MustCompile(`^[0-9]{1,5}/(tcp|udp)$`)
	userPattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

func (s *Service) validate() error {
	if s.User != "" && (!userPattern.MatchString(s.User) || s.User == "root") {
		return fmt.Errorf("user %q: a lower-case account name, not root", s.User)
	}
	for _, c := range s.Capabilities {
		if !capPattern.MatchString(c) {
			return fmt.Errorf("capability %q: write it as CAP_NAME", c)
		}
		why, known := Capabilities[c]
		if !known {
			return fmt.Errorf("capability %q: no such capability (see capabilities(7))", c)
		}
		if why != "" && !s.Privileged {
			return fmt.Errorf("capability %s is privileged: %s; declare the service privileged if it really needs it", c, why)
		}
	}
	for _, p := range s.Ports {
		if !portPattern.MatchString(p) {
			return fmt.Errorf("port %q: write it as NUMBER/tcp or NUMBER/udp", p)
		}
	}
	for _, d := range s.Depends {
		if !ValidName(d) || d == s.Name {
			return fmt.Errorf("depends: %q is not another service's name", d)
		}
	}
	if s.Data != "" {
		if err := cleanPath(s.Data); err != nil {
			return fmt.Errorf("data %q: %v", s.Data, err)
		}
		if !strings.HasPrefix(s.Data, DataPrefix) {
			return fmt.Errorf("data %q: want a folder under %s, such as %s%s: elsewhere it would cover the files byzd writes into the service's root", s.Data, DataPrefix, DataPrefix, s.Name)
		}
	}
	data := s.DataDir()
	for _, c := range s.Config {
		if err := cleanPath(c.Path); err != nil {
			return fmt.Errorf("config path %q: %v", c.Path, err)
		}
		if inside(c.Path, data) || inside(data, c.Path) {
			return fmt.Errorf("config path %q is in the data folder %s, which the service can write: put it elsewhere (under /etc)", c.Path, data)
		}
	}
	if s.Web != nil {
		if err := s.Web.validate(data); err != nil {
			return fmt.Errorf("web: %v", err)
		}
		if !webLabel.MatchString(s.WebName()) {
			return fmt.Errorf("web: name %q: a host label (lower-case letters, digits, inner dashes): give web.name", s.WebName())
		}
	}
	return nil
}

// webLabel is one DNS label: what goes before the node's name.
var webLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (w *Web) validate(data string) error {
	switch {
	case w.Socket == "" && w.Addr == "":
		return errors.New("no socket or addr: say where the app listens")
	case w.Socket != "" && w.Addr != "":
		return errors.New("both socket and addr: give one")
	case w.Socket != "":
		if err := cleanPath(w.Socket); err != nil {
			return fmt.Errorf("socket %q: %v", w.Socket, err)
		}
		if !strings.HasPrefix(w.Socket, data+"/") {
			return fmt.Errorf("socket %q: want it inside the data folder %s (the service can create it nowhere else)", w.Socket, data)
		}
	case w.Addr != "":
		host, port, err := net.SplitHostPort(w.Addr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() || !portPattern.MatchString(port+"/tcp") {
			return fmt.Errorf("addr %q: want a loopback address and port, such as 127.0.0.1:9000", w.Addr)
		}
	}
	if w.Health != "" && (!strings.HasPrefix(w.Health, "/") || strings.ContainsAny(w.Health, " \r\n#")) {
		return fmt.Errorf("health %q: want a path such as /", w.Health)
	}
	if w.MaxBodyMB < 0 || w.Concurrent < 0 || w.PerClient < 0 {
		return errors.New("limits: want positive numbers, or 0 for the defaults")
	}
	if f := w.FastCGI; f != nil {
		if w.Socket == "" {
			return errors.New("fastcgi: give the responder's socket")
		}
		if err := cleanPath(f.Root); err != nil {
			return fmt.Errorf("fastcgi.root %q: %v", f.Root, err)
		}
		if strings.Contains(f.Index, "/") {
			return fmt.Errorf("fastcgi.index %q: a file name", f.Index)
		}
		for _, d := range f.Deny {
			if d == "" || strings.HasPrefix(d, "/") || strings.Contains(d, "..") {
				return fmt.Errorf("fastcgi.deny %q: a path under the root, such as conf/", d)
			}
		}
		for _, e := range f.Static {
			if !strings.HasPrefix(e, ".") || strings.Contains(e, "/") {
				return fmt.Errorf("fastcgi.static %q: an extension such as .css", e)
			}
		}
	}
	return nil
}

// cleanPath checks a path inside a service's root: absolute, in its
// shortest form, below the root itself.
func cleanPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return errors.New("want an absolute path")
	case p == "/":
		return errors.New("want a path below /")
	case path.Clean(p) != p || strings.Contains(p, ".."):
		return errors.New("want a plain path: no .., no . or empty parts, no slash at the end")
	case strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return errors.New("a control character")
	}
	return nil
}

// inside reports whether p is dir or under it.
func inside(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

package npm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Registry is where tarballs come from, as the user's npm configuration
// says: the registry, and registries for scopes ("@scope:registry=").
// byz never names a registry itself.
type Registry struct {
	URL    *url.URL            // path ends in a slash
	Scopes map[string]*url.URL // "@scope" → registry
	// CAFile is npm's cafile: when set, the only certificate authorities
	// trusted, as in npm.
	CAFile string
	// From says where URL came from ("npm_config_registry",
	// "/root/.npmrc", "npm config get registry"), for messages.
	From string
}

// ConfigOptions are the seams of LoadRegistry. The zero value reads the
// process's environment and npm's configuration files, and may run npm.
type ConfigOptions struct {
	// Environ lists the environment as KEY=VALUE; default os.Environ.
	Environ func() []string
	// Project is the application's folder, whose .npmrc npm reads first.
	Project string
	// NPM is the npm command asked as a last resort (npm config get
	// registry), which knows npm's built-in default; "" means "npm",
	// "-" never runs it.
	NPM string
}

// npmrc is one configuration layer: its keys, and where it came from.
type npmrc struct {
	from string
	keys map[string]string
}

// LoadRegistry finds the registry the way npm does, highest precedence
// first: the environment (npm_config_registry, NPM_CONFIG_REGISTRY), the
// project's .npmrc, the user's (npm_config_userconfig or ~/.npmrc), the
// global one (npm_config_globalconfig or PREFIX/etc/npmrc) and npm's
// built-in npmrc; then, as a last resort, it asks npm itself. It fails,
// saying what to set, when none names one.
func LoadRegistry(opts ConfigOptions) (*Registry, error) {
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ
	}
	env := envLayer(environ())
	layers := []npmrc{env}
	getenv := func(k string) (string, bool) {
		for _, kv := range environ() {
			if n, v, ok := strings.Cut(kv, "="); ok && n == k {
				return v, true
			}
		}
		return "", false
	}
	read := func(file string) error {
		l, err := readNpmrc(file, getenv)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		layers = append(layers, l)
		return nil
	}
	if opts.Project != "" {
		if err := read(filepath.Join(opts.Project, ".npmrc")); err != nil {
			return nil, err
		}
	}
	user := env.keys["userconfig"]
	if user == "" {
		if home, ok := getenv("HOME"); ok && home != "" {
			user = filepath.Join(home, ".npmrc")
		}
	}
	if user != "" {
		if err := read(user); err != nil {
			return nil, err
		}
	}
	global := env.keys["globalconfig"]
	if global == "" {
		prefix := env.keys["prefix"]
		if prefix == "" {
			// npm's default prefix is the folder above node's bin/.
			if node, err := exec.LookPath("node"); err == nil {
				if real, err := filepath.EvalSymlinks(node); err == nil {
					node = real
				}
				prefix = filepath.Dir(filepath.Dir(node))
			}
		}
		if prefix != "" {
			global = filepath.Join(prefix, "etc", "npmrc")
		}
	}
	if global != "" {
		if err := read(global); err != nil {
			return nil, err
		}
	}
	npmCmd := opts.NPM
	if npmCmd == "" {
		npmCmd = "npm"
	}
	if npmCmd != "-" {
		// npm's built-in npmrc sits in its own package folder.
		if bin, err := exec.LookPath(npmCmd); err == nil {
			if real, err := filepath.EvalSymlinks(bin); err == nil {
				if err := read(filepath.Join(filepath.Dir(filepath.Dir(real)), "npmrc")); err != nil {
					return nil, err
				}
			}
		}
	}
	lookup := func(key string) (string, string) {
		for _, l := range layers {
			if v, ok := l.keys[key]; ok && v != "" {
				return v, l.from
			}
		}
		return "", ""
	}

	r := &Registry{Scopes: map[string]*url.URL{}}
	v, from := lookup("registry")
	if v == "" && npmCmd != "-" {
		v, from = askNpm(npmCmd, opts.Project, environ())
	}
	if v == "" {
		return nil, fmt.Errorf("%w: no registry configured: set registry=URL in ~/.npmrc, or npm_config_registry=URL "+
			"in the environment (npm was not found to ask for its default)", ErrRegistry)
	}
	u, err := registryURL(v)
	if err != nil {
		return nil, fmt.Errorf("%w: registry %q (from %s): %v", ErrRegistry, v, from, err)
	}
	r.URL, r.From = u, from
	seen := map[string]bool{}
	for _, l := range layers {
		for k := range l.keys {
			scope, ok := strings.CutSuffix(k, ":registry")
			if !ok || !strings.HasPrefix(scope, "@") || seen[scope] {
				continue
			}
			seen[scope] = true
			v, from := lookup(k)
			if v == "" {
				continue
			}
			u, err := registryURL(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %s %q (from %s): %v", ErrRegistry, k, v, from, err)
			}
			r.Scopes[scope] = u
		}
	}
	if v, _ := lookup("cafile"); v != "" {
		r.CAFile = v
	}
	return r, nil
}

// For returns the registry of a package: its scope's, else the default.
func (r *Registry) For(name string) *url.URL {
	if scope, _, ok := strings.Cut(name, "/"); ok && strings.HasPrefix(scope, "@") {
		if u := r.Scopes[scope]; u != nil {
			return u
		}
	}
	return r.URL
}

func registryURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, errors.New("want an http or https URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("want a URL with no user, query or fragment")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawPath = ""
	return u, nil
}

// askNpm runs npm config get registry: npm knows its built-in default,
// which byz does not write down. It is only asked when fetching.
func askNpm(npm, dir string, environ []string) (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "config", "get", "registry")
	cmd.Dir = dir
	cmd.Env = environ
	out, err := cmd.Output()
	if err != nil {
		return "", ""
	}
	v := strings.TrimSpace(string(out))
	if v == "undefined" || v == "null" {
		return "", ""
	}
	return v, "npm config get registry"
}

// envLayer is npm's reading of the environment: npm_config_KEY, in any
// case, underscores after the first character meaning dashes. The
// lower-case spelling wins over others.
func envLayer(environ []string) npmrc {
	l := npmrc{from: "the environment", keys: map[string]string{}}
	lower := map[string]bool{}
	for _, kv := range environ {
		n, v, ok := strings.Cut(kv, "=")
		if !ok || len(n) <= len("npm_config_") || !strings.EqualFold(n[:len("npm_config_")], "npm_config_") {
			continue
		}
		rest := n[len("npm_config_"):]
		key := strings.ToLower(rest[:1] + strings.ReplaceAll(rest[1:], "_", "-"))
		isLower := strings.HasPrefix(n, "npm_config_")
		if _, dup := l.keys[key]; dup && lower[key] && !isLower {
			continue
		}
		l.keys[key], lower[key] = v, isLower
	}
	return l
}

// readNpmrc reads an npmrc the way npm's ini reader does: key = value
// lines, ; and # comments, [section] headers prefixing keys, quoted
// values, and ${VAR} (or ${VAR?}, empty when unset) replaced from the
// environment.
func readNpmrc(file string, getenv func(string) (string, bool)) (npmrc, error) {
	data, err := readFile(file, 1<<20)
	if err != nil {
		return npmrc{}, err
	}
	l := npmrc{from: file, keys: map[string]string{}}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if line[0] == '[' && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		k, v = unquote(strings.TrimSpace(k)), unquote(strings.TrimSpace(v))
		var err error
		if k, err = expandEnv(k, getenv); err == nil {
			v, err = expandEnv(v, getenv)
		}
		if err != nil {
			return npmrc{}, fmt.Errorf("%s:%d: %w", file, n, err)
		}
		if section != "" {
			k = section + "." + k
		}
		l.keys[k] = v
	}
	return l, sc.Err()
}

// unquote takes a value as ini does: a double-quoted one is JSON, a
// single-quoted one literal, an unquoted one ends at a ; or # comment.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		var v string
		if json.Unmarshal([]byte(s), &v) == nil {
			return v
		}
		return s[1 : len(s)-1]
	}
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return s[1 : len(s)-1]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && strings.IndexByte("\\;#", s[i+1]) >= 0 {
			b.WriteByte(s[i+1])
			i++
			continue
		}
		if c == ';' || c == '#' {
			break
		}
		b.WriteByte(c)
	}
	return strings.TrimSpace(b.String())
}

// expandEnv replaces ${VAR} and ${VAR?} as npm does; an unset ${VAR} is
// an error, as in npm.
func expandEnv(s string, getenv func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '\\' {
			b.WriteString(s[:i-1] + s[i:i+j+1])
			s = s[i+j+1:]
			continue
		}
		name := s[i+2 : i+j]
		optional := strings.HasSuffix(name, "?")
		name = strings.TrimSuffix(name, "?")
		v, ok := getenv(name)
		if !ok && !optional {
			return "", fmt.Errorf("${%s} is not set in the environment", name)
		}
		b.WriteString(s[:i] + v)
		s = s[i+j+1:]
	}
}

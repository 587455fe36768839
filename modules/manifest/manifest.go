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

// Service declares a long-running program the node daemon can supervise.
// Its fields grow with the daemon (issue 5); unknown keys are rejected so a
// typo does not silently drop a setting.
type Service struct {
	Name         string            `json:"name"`
	Command      []string          `json:"command"`
	User         string            `json:"user,omitempty"`
	Capabilities []string          `json:"capabilities,omitempty"`
	Ports        []string          `json:"ports,omitempty"`
	Depends      []string          `json:"depends,omitempty"`
	Environment  map[string]string `json:"environment,omitempty"`
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

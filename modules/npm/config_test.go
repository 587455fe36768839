package npm

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Registries in these tests are made-up names under .invalid (RFC 2606),
// and the loopback.

func TestReadNpmrc(t *testing.T) {
	file := filepath.Join(t.TempDir(), "npmrc")
	os.WriteFile(file, []byte(`; a comment
# another
registry = https://mirror.invalid/npm/ ; trailing comment
@me:registry="https://scoped.invalid/"
cafile='/etc/ssl/x.pem'
token = ${TOKEN}
maybe=${UNSET?}x
escaped = a\;b
  spaced   =   value with spaces  
[section]
key=v
`), 0o644)
	env := func(k string) (string, bool) {
		if k == "TOKEN" {
			return "t0k", true
		}
		return "", false
	}
	l, err := readNpmrc(file, env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"registry": "https://mirror.invalid/npm/", "@me:registry": "https://scoped.invalid/",
		"cafile": "/etc/ssl/x.pem", "token": "t0k", "maybe": "x", "escaped": "a;b", "spaced": "value with spaces",
		"section.key": "v"}
	if !reflect.DeepEqual(l.keys, want) {
		t.Errorf("keys %v\nwant %v", l.keys, want)
	}
	os.WriteFile(file, []byte("a=1\nregistry=${NOPE}/\n"), 0o644)
	if _, err := readNpmrc(file, env); err == nil || !strings.Contains(err.Error(), file+":2: ${NOPE} is not set") {
		t.Errorf("unset variable: %v", err)
	}
}

func TestLoadRegistry(t *testing.T) {
	home, project, global := t.TempDir(), t.TempDir(), t.TempDir()
	write := func(dir, body string) string {
		f := filepath.Join(dir, ".npmrc")
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	globalFile := filepath.Join(global, "npmrc")
	os.WriteFile(globalFile, []byte("registry=https://global.invalid/\n@g:registry=https://g.invalid/\ncafile=/global.pem\n"), 0o644)
	prefix := t.TempDir()
	os.Mkdir(filepath.Join(prefix, "etc"), 0o755)
	os.WriteFile(filepath.Join(prefix, "etc", "npmrc"), []byte("registry = https://prefix.invalid\n"), 0o644)
	user := write(home, "registry=https://user.invalid/\n@u:registry=https://u.invalid/x\n")
	base := []string{"HOME=" + home, "npm_config_globalconfig=" + globalFile}
	for _, tc := range []struct {
		name    string
		env     []string
		project string
		url     string
		from    string
		scopes  map[string]string
	}{
		{name: "user over global", env: base, url: "https://user.invalid/", from: user,
			scopes: map[string]string{"@u": "https://u.invalid/x/", "@g": "https://g.invalid/"}},
		{name: "project over user", env: base, project: "registry=http://127.0.0.1:4873\n@u:registry=https://pu.invalid/",
			url: "http://127.0.0.1:4873/", from: filepath.Join(project, ".npmrc"),
			scopes: map[string]string{"@u": "https://pu.invalid/", "@g": "https://g.invalid/"}},
		{name: "environment over all", env: append(base, "NPM_CONFIG_REGISTRY=https://upper.invalid/"), project: "registry=https://p.invalid/",
			url: "https://upper.invalid/", from: "the environment"},
		{name: "lower case first", env: append(base, "npm_config_registry=https://lower.invalid/", "NPM_CONFIG_REGISTRY=https://upper.invalid/"),
			url: "https://lower.invalid/", from: "the environment"},
		{name: "lower case first, either order", env: append(base, "NPM_CONFIG_REGISTRY=https://upper.invalid/", "npm_config_registry=https://lower.invalid/"),
			url: "https://lower.invalid/", from: "the environment"},
		{name: "another user config", env: []string{"HOME=" + t.TempDir(), "npm_config_userconfig=" + user, "npm_config_globalconfig=/nonexistent"},
			url: "https://user.invalid/", from: user},
		{name: "global only", env: []string{"HOME=" + t.TempDir(), "npm_config_globalconfig=" + globalFile},
			url: "https://global.invalid/", from: globalFile},
		{name: "prefix names the global config", env: []string{"HOME=" + t.TempDir(), "npm_config_prefix=" + prefix},
			url: "https://prefix.invalid/", from: filepath.Join(prefix, "etc", "npmrc")},
		{name: "nothing configured", env: []string{"HOME=" + t.TempDir(), "npm_config_globalconfig=/nonexistent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(project, ".npmrc"))
			if tc.project != "" {
				write(project, tc.project)
			}
			env := tc.env
			r, err := LoadRegistry(ConfigOptions{Environ: func() []string { return env }, Project: project, NPM: "-"})
			if tc.url == "" {
				if !errors.Is(err, ErrRegistry) || !strings.Contains(err.Error(), "set registry=URL in ~/.npmrc, or npm_config_registry=URL") {
					t.Fatalf("LoadRegistry = %v, %v; want ErrRegistry saying what to set", r, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.URL.String() != tc.url || r.From != tc.from {
				t.Errorf("registry %s from %s, want %s from %s", r.URL, r.From, tc.url, tc.from)
			}
			for scope, want := range tc.scopes {
				if got := r.For(scope + "/pkg").String(); got != want {
					t.Errorf("%s: %s, want %s", scope, got, want)
				}
			}
			if got := r.For("@none/pkg").String(); got != tc.url {
				t.Errorf("an unconfigured scope gets %s, want the default %s", got, tc.url)
			}
			if r.CAFile != "/global.pem" && strings.Contains(strings.Join(env, " "), "globalconfig="+globalFile) {
				t.Errorf("cafile %q, want the global one", r.CAFile)
			}
		})
	}
}

func TestLoadRegistryAsksNpm(t *testing.T) {
	// A stand-in npm that answers "config get registry" as npm does.
	dir := t.TempDir()
	fake := filepath.Join(dir, "npm")
	os.WriteFile(fake, []byte("#!/bin/sh\n[ \"$*\" = 'config get registry' ] && echo 'http://127.0.0.1:9/'\n"), 0o755)
	r, err := LoadRegistry(ConfigOptions{Environ: func() []string { return []string{"HOME=" + dir, "npm_config_globalconfig=/nonexistent"} }, NPM: fake})
	if err != nil {
		t.Fatal(err)
	}
	if r.URL.String() != "http://127.0.0.1:9/" || r.From != "npm config get registry" {
		t.Errorf("registry %s from %s", r.URL, r.From)
	}
	// npm not there: the error says what to set.
	_, err = LoadRegistry(ConfigOptions{Environ: func() []string { return []string{"HOME=" + dir, "npm_config_globalconfig=/nonexistent"} },
		NPM: filepath.Join(dir, "no-npm")})
	if !errors.Is(err, ErrRegistry) || !strings.Contains(err.Error(), "npm was not found") {
		t.Errorf("without npm: %v", err)
	}
}

func TestRegistryURLs(t *testing.T) {
	for _, bad := range []string{"mirror.invalid", "ftp://mirror.invalid/", "https://user:pw@mirror.invalid/", "https://mirror.invalid/?q=1"} {
		if _, err := registryURL(bad); err == nil {
			t.Errorf("registryURL(%q) accepted", bad)
		}
	}
	reg, _ := registryURL("https://mirror.invalid/npm")
	scoped, _ := registryURL("http://127.0.0.1:4873/")
	r := &Registry{URL: reg, Scopes: map[string]*url.URL{"@s": scoped}, From: "test"}
	for _, tc := range []struct {
		name, version, resolved string
		want, err               string
	}{
		{name: "which", version: "2.0.2", want: "https://mirror.invalid/npm/which/-/which-2.0.2.tgz"},
		{name: "@types/node", version: "18.0.0", want: "https://mirror.invalid/npm/@types/node/-/node-18.0.0.tgz"},
		{name: "@s/pkg", version: "1.0.0-rc.1", want: "http://127.0.0.1:4873/@s/pkg/-/pkg-1.0.0-rc.1.tgz"},
		{name: "which", version: "2.0.2", resolved: "https://mirror.invalid/npm/which/-/which-2.0.2.tgz",
			want: "https://mirror.invalid/npm/which/-/which-2.0.2.tgz"},
		{name: "which", version: "2.0.2", resolved: "https://elsewhere.invalid/which/-/which-2.0.2.tgz", err: "not on the configured registry (https://mirror.invalid/npm/, from test)"},
		{name: "which", version: "2.0.2", resolved: "http://mirror.invalid/npm/which/-/which-2.0.2.tgz", err: "not on the configured registry"},
		{name: "which", version: "2.0.2", resolved: "https://mirror.invalid/other/which/-/which-2.0.2.tgz", err: "not on the configured registry"},
		{name: "which", version: "2.0.2", resolved: "https://mirror.invalid:8443/npm/which.tgz", err: "not on the configured registry"},
		{name: "which", version: "2.0.2", resolved: "https://u@mirror.invalid/npm/which.tgz", err: "not on the configured registry"},
		{name: "@s/pkg", version: "1.0.0", resolved: "https://mirror.invalid/npm/@s/pkg/-/pkg-1.0.0.tgz", err: "(http://127.0.0.1:4873/, from test)"},
	} {
		got, err := r.TarballURL(&Package{Path: "node_modules/" + tc.name, Name: tc.name, Version: tc.version, Resolved: tc.resolved})
		if tc.err != "" {
			if !errors.Is(err, ErrRegistry) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "refusing to fetch from another host") {
				t.Errorf("%s resolved %s: %q, %v; want ErrRegistry with %q", tc.name, tc.resolved, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s@%s: %q, %v; want %s", tc.name, tc.version, got, err, tc.want)
		}
	}
}

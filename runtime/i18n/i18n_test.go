package i18n

import (
	"testing"
	"testing/fstest"
)

func testCatalogs(t *testing.T) *Catalogs {
	t.Helper()
	fsys := fstest.MapFS{
		"m/en.json": {Data: []byte(`{"language.name":"English","hello":"Hello, %s","only.en":"Only English"}`)},
		"m/es.json": {Data: []byte(`{"language.name":"Español","hello":"Hola, %s"}`)},
		"m/fr.json": {Data: []byte(`{"language.name":"Français","hello":"Bonjour, %s"}`)},
	}
	c, err := Load(fsys, "m", "en")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMatch(t *testing.T) {
	c := testCatalogs(t)
	for _, tc := range []struct{ accept, want string }{
		{"", "en"},
		{"es", "es"},
		{"es-AR,es;q=0.9,en;q=0.8", "es"},
		{"de-DE,de;q=0.9,fr;q=0.5,en;q=0.4", "fr"},
		{"de", "en"},
		{"fr;q=0.5,es;q=0.7", "es"},
		{"fr,es", "fr"}, // equal q: the listed order
		{"es;q=0,fr", "fr"},
		{"es;q=abc,fr;q=0.1", "fr"},
		{"FR-ca", "fr"},
	} {
		if got := c.Match(tc.accept); got != tc.want {
			t.Errorf("Match(%q) = %s, want %s", tc.accept, got, tc.want)
		}
	}
}

func TestT(t *testing.T) {
	c := testCatalogs(t)
	if got := c.T("es", "hello", "Ana"); got != "Hola, Ana" {
		t.Errorf("T es hello = %q", got)
	}
	if got := c.T("fr", "only.en"); got != "Only English" {
		t.Errorf("fallback: %q", got)
	}
	if got := c.T("fr", "missing"); got != "[missing]" {
		t.Errorf("a missing key: %q", got)
	}
	if c.Name("es") != "Español" || len(c.Languages()) != 3 || !c.Has("fr") || c.Has("de") {
		t.Error("Name, Languages or Has")
	}
}

func TestLoadErrors(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"bad json":    {"m/en.json": {Data: []byte(`{`)}},
		"no name":     {"m/en.json": {Data: []byte(`{"a":"b"}`)}},
		"no fallback": {"m/es.json": {Data: []byte(`{"language.name":"Español"}`)}},
	} {
		if _, err := Load(fsys, "m", "en"); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

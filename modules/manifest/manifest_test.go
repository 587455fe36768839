package manifest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	m := &Manifest{
		Name: "ngircd", Version: "26.1-1", Depends: []string{"base"}, Provides: []string{"ircd"},
		Services: []Service{{Name: "ngircd", Command: []string{"/usr/sbin/ngircd", "-n"}, User: "irc", Ports: []string{"6667/tcp"}}},
		Sources:  []Source{{Ref: "ngircd_26.1-1_amd64.deb", Kind: "deb", SHA256: strings.Repeat("ab", 32)}},
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := m.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("Marshal is not deterministic")
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if !bytes.Equal(b, again) {
		t.Errorf("round trip changed the manifest:\n%s\nvs\n%s", b, again)
	}
	if Path("ngircd") != "usr/share/byzantium/modules/ngircd.json" {
		t.Errorf("Path = %q", Path("ngircd"))
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name, json string
	}{
		{"bad name", `{"name":"Bad Name"}`},
		{"unknown key", `{"name":"x","colour":"red"}`},
		{"self dependency", `{"name":"x","depends":["x"]}`},
		{"bad depends", `{"name":"x","depends":["../etc"]}`},
		{"relative command", `{"name":"x","services":[{"name":"s","command":["ngircd"]}]}`},
		{"duplicate service", `{"name":"x","services":[{"name":"s","command":["/a"]},{"name":"s","command":["/b"]}]}`},
		{"bad digest", `{"name":"x","sources":[{"ref":"a","kind":"dir","sha256":"xyz"}]}`},
		{"trailing data", `{"name":"x"} {}`},
		{"wrong type", `{"name":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.json)); !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%s) error = %v, want ErrInvalid", tt.json, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"name":"x","version":"1","depends":["a"],"services":[{"name":"s","command":["/bin/s"]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("a parsed manifest does not marshal: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("marshalled manifest does not parse: %v\n%s", err, out)
		}
	})
}

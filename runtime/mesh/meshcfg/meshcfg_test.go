package meshcfg

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"byzantium/runtime/nodeapi"
)

func TestDefaultsAreValid(t *testing.T) {
	d := Defaults()
	if err := ValidateSettings(d); err != nil {
		t.Fatalf("ValidateSettings(Defaults()) = %v", err)
	}
	if d.Protocol != nodeapi.MeshBabel || d.SSID != DefaultSSID || d.Channel != 6 || d.Share != nodeapi.ShareAuto || d.Key != "" || len(d.Interfaces) != 0 {
		t.Errorf("Defaults() = %+v", d)
	}
}

func TestValidateSettings(t *testing.T) {
	with := func(f func(*nodeapi.MeshSettings)) nodeapi.MeshSettings {
		s := Defaults()
		f(&s)
		return s
	}
	tests := []struct {
		name   string
		s      nodeapi.MeshSettings
		fields []string // the fields named, in order; none: valid
		msg    string   // a part of the message
	}{
		{"defaults", Defaults(), nil, ""},
		{"batman", with(func(s *nodeapi.MeshSettings) { s.Protocol = nodeapi.MeshBatman }), nil, ""},
		{"both", with(func(s *nodeapi.MeshSettings) { s.Protocol = nodeapi.MeshBoth }), nil, ""},
		{"olsr", with(func(s *nodeapi.MeshSettings) { s.Protocol = "olsr" }), []string{"protocol"}, `"olsr": want babel`},
		{"empty protocol", with(func(s *nodeapi.MeshSettings) { s.Protocol = "" }), []string{"protocol"}, "want babel"},
		{"ssid 32", with(func(s *nodeapi.MeshSettings) { s.SSID = strings.Repeat("a", 32) }), nil, ""},
		{"ssid 33", with(func(s *nodeapi.MeshSettings) { s.SSID = strings.Repeat("a", 33) }), []string{"ssid"}, "33 bytes: at most 32"},
		{"ssid utf8 bytes", with(func(s *nodeapi.MeshSettings) { s.SSID = strings.Repeat("é", 17) }), []string{"ssid"}, "34 bytes"},
		{"ssid empty", with(func(s *nodeapi.MeshSettings) { s.SSID = "" }), []string{"ssid"}, "empty"},
		{"ssid newline", with(func(s *nodeapi.MeshSettings) { s.SSID = "a\nb" }), []string{"ssid"}, "printable"},
		{"ssid bad utf8", with(func(s *nodeapi.MeshSettings) { s.SSID = "a\xffb" }), []string{"ssid"}, "printable"},
		{"channel 1", with(func(s *nodeapi.MeshSettings) { s.Channel = 1 }), nil, ""},
		{"channel 13", with(func(s *nodeapi.MeshSettings) { s.Channel = 13 }), nil, ""},
		{"channel 14", with(func(s *nodeapi.MeshSettings) { s.Channel = 14 }), []string{"channel"}, "14: want 1 to 13"},
		{"channel 0", with(func(s *nodeapi.MeshSettings) { s.Channel = 0 }), []string{"channel"}, "0: want"},
		{"channel -6", with(func(s *nodeapi.MeshSettings) { s.Channel = -6 }), []string{"channel"}, ""},
		{"channel 36", with(func(s *nodeapi.MeshSettings) { s.Channel = 36 }), nil, ""},
		{"channel 165", with(func(s *nodeapi.MeshSettings) { s.Channel = 165 }), nil, ""},
		{"channel 37", with(func(s *nodeapi.MeshSettings) { s.Channel = 37 }), []string{"channel"}, ""},
		{"channel 169", with(func(s *nodeapi.MeshSettings) { s.Channel = 169 }), []string{"channel"}, ""},
		{"share on", with(func(s *nodeapi.MeshSettings) { s.Share = nodeapi.ShareOn }), nil, ""},
		{"share off", with(func(s *nodeapi.MeshSettings) { s.Share = nodeapi.ShareOff }), nil, ""},
		{"share yes", with(func(s *nodeapi.MeshSettings) { s.Share = "yes" }), []string{"share"}, `"yes": want auto`},
		{"interfaces", with(func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth1", "wlan0", "enx00e04c680001"} }), nil, ""},
		{"interface 16", with(func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth1", "abcdefghijklmnop"} }), []string{"interfaces[1]"}, "16 bytes: at most 15"},
		{"interface slash", with(func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth/1"} }), []string{"interfaces[0]"}, "other than / and :"},
		{"interface colon", with(func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth0:1"} }), []string{"interfaces[0]"}, ""},
		{"interface space", with(func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth 0"} }), []string{"interfaces[0]"}, ""},
		{"interface dotdot", with(func(s *nodeapi.MeshSettings) { s.Interfaces = []string{".."} }), []string{"interfaces[0]"}, "not a name"},
		{"interface empty", with(func(s *nodeapi.MeshSettings) { s.Interfaces = []string{""} }), []string{"interfaces[0]"}, "empty"},
		{"interface twice", with(func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth1", "eth2", "eth1"} }), []string{"interfaces[2]"}, "named twice"},
		{"too many interfaces", with(func(s *nodeapi.MeshSettings) { s.Interfaces = make([]string, 33) }), []string{"interfaces"}, "at most 32"},
		{"babel only", with(func(s *nodeapi.MeshSettings) { s.Protocol, s.BabelOnly = nodeapi.MeshBoth, []string{"eth2"} }), nil, ""},
		{"babel only named", with(func(s *nodeapi.MeshSettings) { s.Interfaces, s.BabelOnly = []string{"eth1", "eth2"}, []string{"eth2"} }), nil, ""},
		{"babel only not meshing", with(func(s *nodeapi.MeshSettings) { s.Interfaces, s.BabelOnly = []string{"eth1"}, []string{"eth2"} }), []string{"babel_only[0]"}, `"eth2" is not one of the mesh interfaces (eth1)`},
		{"babel only uplink", with(func(s *nodeapi.MeshSettings) { s.Uplink, s.BabelOnly = "eth0", []string{"eth0"} }), []string{"babel_only[0]"}, "is the uplink"},
		{"babel only twice", with(func(s *nodeapi.MeshSettings) { s.BabelOnly = []string{"eth2", "eth2"} }), []string{"babel_only[1]"}, "named twice"},
		{"babel only bad", with(func(s *nodeapi.MeshSettings) { s.BabelOnly = []string{"eth/2"} }), []string{"babel_only[0]"}, ""},
		{"babel only too many", with(func(s *nodeapi.MeshSettings) { s.BabelOnly = make([]string, 33) }), []string{"babel_only"}, "at most 32"},
		{"uplink", with(func(s *nodeapi.MeshSettings) { s.Uplink = "eth0" }), nil, ""},
		{"uplink meshing", with(func(s *nodeapi.MeshSettings) { s.Uplink, s.Interfaces = "eth0", []string{"eth0"} }), []string{"uplink"}, "mesh interface too"},
		{"uplink bad", with(func(s *nodeapi.MeshSettings) { s.Uplink = "eth0\n" }), []string{"uplink"}, ""},
		{"key", with(func(s *nodeapi.MeshSettings) { s.Key = "correct horse" }), nil, ""},
		{"key short", with(func(s *nodeapi.MeshSettings) { s.Key = "1234567" }), []string{"key"}, "7 bytes: at least 8"},
		{"key long", with(func(s *nodeapi.MeshSettings) { s.Key = strings.Repeat("k", 129) }), []string{"key"}, "at most 128"},
		{"key control", with(func(s *nodeapi.MeshSettings) { s.Key = "12345678\x00" }), []string{"key"}, "printable"},
		{"keep key", with(func(s *nodeapi.MeshSettings) { s.KeepKey = true }), nil, ""},
		{"many wrong", nodeapi.MeshSettings{Protocol: "x", SSID: "", Channel: 99, Share: "x"}, []string{"protocol", "ssid", "channel", "share"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSettings(tt.s)
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("ValidateSettings = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateSettings = nil, want errors on %v", tt.fields)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("%v is not a *FieldError", e)
				}
				got = append(got, fe.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("fields = %v, want %v (%v)", got, tt.fields, err)
			}
			if !strings.HasPrefix(err.Error(), tt.fields[0]+": ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q: want it to start with %q and hold %q", err, tt.fields[0]+": ", tt.msg)
			}
			if strings.Count(err.Error(), "\n") != len(tt.fields)-1 {
				t.Errorf("error %q: want one line per field", err)
			}
		})
	}
}

func TestCheckTargets(t *testing.T) {
	tests := []struct {
		in      []string
		wantErr string // "" valid
	}{
		{nil, ""},
		{[]string{"tcp:192.0.2.1:443"}, ""},
		{[]string{"tcp:9.9.9.9:53", "tcp:[2620:fe::fe]:443"}, ""},
		// A local "Net": a private server behind the uplink.
		{[]string{"tcp:10.1.2.3:443", "http://10.0.30.2:8080/"}, ""},
		{[]string{"https://example.net/generate_204"}, ""},
		{[]string{"9.9.9.9:53"}, "want tcp:IP:PORT or an http"},
		{[]string{"tcp:9.9.9.9"}, "want tcp:IP:PORT"},
		{[]string{"tcp:example.net:443"}, "want tcp:IP:PORT"},
		{[]string{"tcp:127.0.0.1:80"}, "loopback"},
		{[]string{"http://[::1]/"}, "loopback"},
		{[]string{"tcp:[fe80::1]:80"}, "link-local"},
		{[]string{"tcp:0.0.0.0:80"}, "unspecified"},
		{[]string{"ftp://example.net/"}, "want tcp:IP:PORT or an http"},
		{[]string{"http://user:pw@example.net/"}, "want tcp:IP:PORT or an http"},
		{[]string{"tcp:9.9.9.9:0"}, "port other than 0"},
		{[]string{"http://" + strings.Repeat("a", 300)}, "at most 256"},
		{[]string{"tcp:9.9.9.9:53", "tcp:9.9.9.9:53"}, "check[1]: \"tcp:9.9.9.9:53\" is named twice"},
		{make([]string, 9), "9 targets, at most 8"},
	}
	for _, tt := range tests {
		err := CheckTargets(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("CheckTargets(%q) = %v, want nil", tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("CheckTargets(%.60q) = %v, want %q", tt.in, err, tt.wantErr)
		}
		s := Defaults()
		s.Check = tt.in
		if err := ValidateSettings(s); (err == nil) != (tt.wantErr == "") {
			t.Errorf("ValidateSettings with check %.60q = %v", tt.in, err)
		}
	}
}

func TestImageRoundTrip(t *testing.T) {
	root := t.TempDir()
	if im, err := ReadImage(root); err != nil || im.Settings.SSID != DefaultSSID {
		t.Fatalf("ReadImage(no file) = %+v, %v; want the defaults", im, err)
	}
	want := Image{Settings: nodeapi.MeshSettings{Protocol: nodeapi.MeshBoth, SSID: "town", Channel: 11, Share: nodeapi.ShareOff,
		Interfaces: []string{"eth1"}, Uplink: "eth0", Check: []string{"tcp:9.9.9.9:53"}}}
	b, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		os.MkdirAll(filepath.Join(root, "etc/byzantium"), 0o755)
		if err := os.WriteFile(filepath.Join(root, ImageFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(b)
	got, err := ReadImage(root)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadImage = %+v, %v; want %+v", got, err, want)
	}
	for name, body := range map[string]string{
		"bad channel":   `{"settings":{"protocol":"babel","ssid":"x","channel":14,"share":"auto"}}`,
		"unknown field": `{"settings":{"protocol":"babel","ssid":"x","channel":1,"share":"auto"},"extra":1}`,
		"key":           `{"settings":{"protocol":"babel","ssid":"x","channel":1,"share":"auto","key":"12345678"}}`,
		"not json":      `channel: 6`,
		"too large":     strings.Repeat(" ", maxImageFile+1),
	} {
		write([]byte(body))
		got, err := ReadImage(root)
		if err == nil || !reflect.DeepEqual(got, DefaultImage()) {
			t.Errorf("%s: ReadImage = %+v, %v; want the defaults and an error", name, got, err)
		}
	}
	os.Remove(filepath.Join(root, ImageFile))
	os.Symlink("/etc/passwd", filepath.Join(root, ImageFile))
	if _, err := ReadImage(root); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadImage(symlink) = %v, want not a regular file", err)
	}
	bad := Defaults()
	bad.Check = []string{"tcp:127.0.0.1:80"}
	if _, err := (Image{Settings: bad}).Marshal(); err == nil {
		t.Error("Marshal of a loopback check target: no error")
	}
}

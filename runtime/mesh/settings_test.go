package mesh

import (
	"errors"
	"strings"
	"testing"

	"byzantium/runtime/nodeapi"
)

func TestValidateSettings(t *testing.T) {
	if err := ValidateSettings(DefaultSettings()); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name  string
		mod   func(*nodeapi.MeshSettings)
		field string // "" = valid
	}{
		{"batman", func(s *nodeapi.MeshSettings) { s.Protocol = nodeapi.MeshBatman }, ""},
		{"both", func(s *nodeapi.MeshSettings) { s.Protocol = nodeapi.MeshBoth }, ""},
		{"olsr", func(s *nodeapi.MeshSettings) { s.Protocol = "olsr" }, "protocol"},
		{"empty protocol", func(s *nodeapi.MeshSettings) { s.Protocol = "" }, "protocol"},
		{"empty ssid", func(s *nodeapi.MeshSettings) { s.SSID = "" }, "ssid"},
		{"32-byte ssid", func(s *nodeapi.MeshSettings) { s.SSID = strings.Repeat("a", 32) }, ""},
		{"33-byte ssid", func(s *nodeapi.MeshSettings) { s.SSID = strings.Repeat("a", 33) }, "ssid"},
		{"utf-8 ssid over 32 bytes", func(s *nodeapi.MeshSettings) { s.SSID = strings.Repeat("é", 17) }, "ssid"},
		{"newline in ssid", func(s *nodeapi.MeshSettings) { s.SSID = "a\nb" }, "ssid"},
		{"channel 0", func(s *nodeapi.MeshSettings) { s.Channel = 0 }, "channel"},
		{"channel 13", func(s *nodeapi.MeshSettings) { s.Channel = 13 }, ""},
		{"channel 14", func(s *nodeapi.MeshSettings) { s.Channel = 14 }, "channel"},
		{"channel 36", func(s *nodeapi.MeshSettings) { s.Channel = 36 }, ""},
		{"channel 37", func(s *nodeapi.MeshSettings) { s.Channel = 37 }, "channel"},
		{"channel 165", func(s *nodeapi.MeshSettings) { s.Channel = 165 }, ""},
		{"channel 166", func(s *nodeapi.MeshSettings) { s.Channel = 166 }, "channel"},
		{"share maybe", func(s *nodeapi.MeshSettings) { s.Share = "maybe" }, "share"},
		{"share off", func(s *nodeapi.MeshSettings) { s.Share = nodeapi.ShareOff }, ""},
		{"interfaces", func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth1", "wlan0"} }, ""},
		{"interface with slash", func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth/1"} }, "interfaces"},
		{"interface too long", func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"abcdefghijklmnop"} }, "interfaces"},
		{"interface twice", func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth1", "eth1"} }, "interfaces"},
		{"uplink also mesh", func(s *nodeapi.MeshSettings) { s.Interfaces = []string{"eth1"}; s.Uplink = "eth1" }, "uplink"},
		{"uplink bad", func(s *nodeapi.MeshSettings) { s.Uplink = "a b" }, "uplink"},
		{"short key", func(s *nodeapi.MeshSettings) { s.Key = "abc" }, "key"},
		{"good key", func(s *nodeapi.MeshSettings) { s.Key = "correct horse" }, ""},
		{"key with newline", func(s *nodeapi.MeshSettings) { s.Key = "correct\nhorse" }, "key"},
	}
	for _, tt := range tests {
		s := DefaultSettings()
		tt.mod(&s)
		err := ValidateSettings(s)
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.field != "" && (!errors.Is(err, ErrSettings) || !strings.Contains(err.Error(), ": "+tt.field+": ")):
			t.Errorf("%s: err = %v, want ErrSettings naming %s", tt.name, err, tt.field)
		}
	}
}

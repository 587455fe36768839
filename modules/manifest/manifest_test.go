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

// TestServiceRules: where a service's data and config files may be, and
// which capabilities need the service declared privileged.
func TestServiceRules(t *testing.T) {
	base := Service{Name: "irc", Command: []string{"/usr/sbin/ngircd"}}
	for _, tc := range []struct {
		name string
		edit func(s *Service)
		want string // "" means valid
	}{
		{"defaults", func(s *Service) {}, ""},
		{"data under /var/lib", func(s *Service) { s.Data = "/var/lib/ngircd/state" }, ""},
		{"config in /etc", func(s *Service) { s.Config = []ConfigFile{{Path: "/etc/ngircd/ngircd.conf"}} }, ""},
		{"config next to the data folder", func(s *Service) {
			s.Data = "/var/lib/irc"
			s.Config = []ConfigFile{{Path: "/var/lib/irc.conf"}}
		}, ""},
		{"unprivileged capability", func(s *Service) { s.Capabilities = []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"} }, ""},
		{"privileged and declared", func(s *Service) {
			s.Capabilities, s.Privileged = []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}, true
		}, ""},

		{"data is /etc", func(s *Service) { s.Data = "/etc" }, `data "/etc": want a folder under /var/lib/, such as /var/lib/irc`},
		{"data is /", func(s *Service) { s.Data = "/" }, `data "/": want a path below /`},
		{"data is /var/lib", func(s *Service) { s.Data = "/var/lib" }, `want a folder under /var/lib/`},
		{"data escapes with ..", func(s *Service) { s.Data = "/var/lib/../../etc" }, `no ..`},
		{"data with a trailing slash", func(s *Service) { s.Data = "/var/lib/irc/" }, `no slash at the end`},
		{"data with a double slash", func(s *Service) { s.Data = "/var/lib//irc" }, `no . or empty parts`},
		{"data relative", func(s *Service) { s.Data = "var/lib/irc" }, `want an absolute path`},
		{"data with a line break", func(s *Service) { s.Data = "/var/lib/irc\nx" }, `a control character`},
		{"config in the data folder", func(s *Service) {
			s.Data = "/var/lib/irc"
			s.Config = []ConfigFile{{Path: "/var/lib/irc/motd"}}
		}, `config path "/var/lib/irc/motd" is in the data folder /var/lib/irc, which the service can write`},
		{"config in the default data folder", func(s *Service) { s.Config = []ConfigFile{{Path: "/var/lib/irc/x/y.conf"}} },
			`is in the data folder /var/lib/irc`},
		{"config is the data folder", func(s *Service) { s.Config = []ConfigFile{{Path: "/var/lib/irc"}} }, `is in the data folder`},
		{"data folder inside a config path", func(s *Service) {
			s.Data = "/var/lib/irc/data"
			s.Config = []ConfigFile{{Path: "/var/lib/irc"}}
		}, `is in the data folder`},
		{"config with ..", func(s *Service) { s.Config = []ConfigFile{{Path: "/etc/../var/lib/irc/x"}} }, `no ..`},
		{"config is /", func(s *Service) { s.Config = []ConfigFile{{Path: "/"}} }, `want a path below /`},

		{"unknown capability", func(s *Service) { s.Capabilities = []string{"CAP_EVERYTHING"} }, `capability "CAP_EVERYTHING": no such capability`},
		{"CAP_SYS_ADMIN undeclared", func(s *Service) { s.Capabilities = []string{"CAP_SYS_ADMIN"} },
			`capability CAP_SYS_ADMIN is privileged: mount, setns, swapon and dozens more: root in all but name; declare the service privileged`},
		{"CAP_SYS_MODULE undeclared", func(s *Service) { s.Capabilities = []string{"CAP_NET_BIND_SERVICE", "CAP_SYS_MODULE"} }, `CAP_SYS_MODULE is privileged`},
		{"CAP_MKNOD undeclared", func(s *Service) { s.Capabilities = []string{"CAP_MKNOD"} }, `CAP_MKNOD is privileged`},
		{"CAP_SYS_CHROOT undeclared", func(s *Service) { s.Capabilities = []string{"CAP_SYS_CHROOT"} }, `chroot escape`},
		{"CAP_NET_ADMIN undeclared", func(s *Service) { s.Capabilities = []string{"CAP_NET_ADMIN"} }, `share the node's network namespace`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.edit(&s)
			m := &Manifest{Name: "irc", Services: []Service{s}}
			err := m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
}

// TestCapabilityTable: every capability the kernel headers name is in the
// table, so a new one cannot slip through as unprivileged by default.
func TestCapabilityTable(t *testing.T) {
	if len(Capabilities) != 41 { // CAP_CHOWN (0) to CAP_CHECKPOINT_RESTORE (40)
		t.Errorf("%d capabilities, want 41", len(Capabilities))
	}
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_MKNOD", "CAP_SYS_RAWIO", "CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SYS_PTRACE", "CAP_BPF"} {
		if _, ok := Privileged(c); !ok {
			t.Errorf("%s is not privileged", c)
		}
	}
	if why, ok := Privileged("CAP_NET_BIND_SERVICE"); ok {
		t.Errorf("CAP_NET_BIND_SERVICE is privileged: %s", why)
	}
}

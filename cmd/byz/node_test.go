package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/ci/testenv"
	"byzantium/overlays"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/tlscert"
)

// The fake node's canned answers.
var (
	fakeStatus = nodeapi.Status{
		Node: "mesh-1", Version: "0.3.0", UptimeSeconds: 3*86400 + 4*3600 + 5*60 + 6,
		Load:   [3]float64{0.1, 0.25, 1},
		Memory: nodeapi.Memory{TotalBytes: 2 << 30, AvailableBytes: 1536 << 20},
		Storage: []nodeapi.Storage{
			{Name: "root", Path: "/", SizeBytes: 1 << 30, FreeBytes: 512 << 20},
			{Name: "media", Path: "/run/byz/media", SizeBytes: 16 << 30, FreeBytes: 12 << 30},
		},
		Persistence: &nodeapi.Persistence{Persistence: overlays.Persistence{Mode: "ram", Store: "byzantium/changes/save.dat", Encrypted: true,
			Warning: "the passphrase prompt was skipped: booting without persistence, as asked"}, SizeBytes: 1 << 30, FreeBytes: 512 << 20},
		Interfaces: []nodeapi.Interface{
			{Name: "lo", Up: true, Addresses: []string{"127.0.0.1/8", "::1/128"}},
			{Name: "eth0", Up: true, MAC: "52:54:00:12:34:56", Addresses: []string{"10.0.0.1/24"}},
			{Name: "wlan0", MAC: "02:00:00:00:00:01", Addresses: []string{}},
		},
		Modules: []string{"base", "tls"},
	}
	fakeModules = []nodeapi.ModuleInfo{
		{Name: "base", Version: "1.0", Folder: "base", File: "byzantium/base/000-base.xzm", Loaded: true, Depends: []string{}, Services: []string{}, RequiredBy: []string{"tls"}},
		{Name: "tls", Version: "3.0.2", Folder: "optional", File: "byzantium/optional/020-tls.xzm", Active: true, Depends: []string{"base"}, RequiredBy: []string{"ngircd"}},
		{Name: "ngircd", Version: "26.1", Folder: "optional", File: "byzantium/optional/050-ngircd.xzm", Active: true, Depends: []string{"tls"}, Services: []string{"ngircd"}, RequiredBy: []string{"webirc"}},
		{Name: "webirc", Folder: "optional", File: "byzantium/optional/060-webirc.xzm", Active: true, Depends: []string{"ngircd"}, Services: []string{"webirc"}},
		{Name: "olsrd", Folder: "optional", File: "byzantium/optional/030-olsrd.xzm", Depends: []string{"base"}, Services: []string{"olsrd", "olsrd-mon"}},
	}
	fakeServices = []nodeapi.ServiceInfo{
		{Name: "ngircd", Module: "ngircd", Available: true, Enabled: true, State: "running", PID: 412, Health: "ok", Ports: []string{"6667/tcp", "6697/tcp"}},
		{Name: "webirc", Module: "webirc", Available: true, Enabled: true, State: "failed", Restarts: 5, Health: "failing", Ports: []string{"8080/tcp"}, LastError: "exit status 1"},
		{Name: "olsrd", Module: "olsrd", State: "stopped", Ports: []string{}},
	}
	fakeLog = []nodeapi.LogLine{
		{Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Level: "INFO", Message: "byzd starting"},
		{Time: time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC), Level: "WARN", Message: "no DHCP answer on eth0"},
	}
)

// fakeNode serves canned answers on byzd's API routes and records each
// request as "METHOD URI" with its Authorization header.
type fakeNode struct {
	token string // wanted as a Bearer token when set

	mu   sync.Mutex
	reqs []string
	auth []string
}

func (f *fakeNode) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

func (f *fakeNode) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs, f.auth = nil, nil
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.RequestURI())
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		reply(w, http.StatusUnauthorized, nodeapi.ErrorBody{Error: "log in first: POST /api/v1/login, or send an API token as Authorization: Bearer"})
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, fakeStatus) })
	mux.HandleFunc("GET /api/v1/modules", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, fakeModules) })
	mux.HandleFunc("POST /api/v1/modules/{name}/activate", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("name") {
		case "olsrd":
			reply(w, 200, nodeapi.ModuleChange{Activated: []string{"olsrd"}})
		case "tls":
			reply(w, 200, nodeapi.ModuleChange{})
		case "broken":
			reply(w, 409, nodeapi.ErrorBody{Error: "broken needs gone, which is not on the media"})
		default:
			reply(w, 404, nodeapi.ErrorBody{Error: "no module " + r.PathValue("name")})
		}
	})
	mux.HandleFunc("POST /api/v1/modules/{name}/deactivate", func(w http.ResponseWriter, r *http.Request) {
		cascade := r.URL.Query().Get("cascade") == "true"
		switch name := r.PathValue("name"); {
		case name == "tls" && !cascade:
			reply(w, 409, nodeapi.ModuleConflict{Error: "tls is needed by active modules", RequiredBy: []string{"ngircd"}})
		case name == "tls":
			reply(w, 200, nodeapi.ModuleChange{Deactivated: []string{"webirc", "ngircd", "tls"}, Stopped: []string{"webirc", "ngircd"}})
		case name == "base":
			reply(w, 409, nodeapi.ErrorBody{Error: "base is loaded at boot: it cannot be deactivated"})
		default:
			reply(w, 200, nodeapi.ModuleChange{Deactivated: []string{name}, Stopped: []string{name}})
		}
	})
	mux.HandleFunc("GET /api/v1/services", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, fakeServices) })
	mux.HandleFunc("POST /api/v1/services/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		for _, s := range fakeServices {
			if s.Name == r.PathValue("name") {
				s.Enabled = r.PathValue("action") != "disable"
				if !s.Enabled {
					s.State, s.PID = "stopped", 0
				}
				reply(w, 200, s)
				return
			}
		}
		reply(w, 404, nodeapi.ErrorBody{Error: "no service " + r.PathValue("name")})
	})
	mux.HandleFunc("GET /api/v1/services/{name}/logs", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, 200, []nodeapi.LogLine{{Time: time.Date(2025, 3, 1, 12, 0, 2, 0, time.UTC), Level: "INFO", Message: "ngircd: listening on 6667"}})
	})
	mux.HandleFunc("GET /api/v1/logs", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, fakeLog) })
	mux.ServeHTTP(w, r)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// localNode serves f on a unix socket and returns its path.
func localNode(t *testing.T, f *fakeNode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "byz") // t.TempDir can pass a socket path's 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "byzd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}

// remoteNode serves f over HTTPS and returns its URL and the fingerprint
// of its certificate.
func remoteNode(t *testing.T, f *fakeNode) (string, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, tlscert.Fingerprint(srv.Certificate().Raw)
}

type nodeResult struct {
	stdout, stderr string
	code           int
}

// runByz runs byz in-process as main does: the error printed with "byz: ",
// exit status 2 for usage errors and 1 for others.
func runByz(t *testing.T, stdin io.Reader, args ...string) nodeResult {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(stdin)
	root.SetArgs(args)
	code := 0
	if err := root.Execute(); err != nil {
		fmt.Fprintf(&errb, "byz: %v\n", err)
		code = 1
		var ue usageError
		if errors.As(err, &ue) {
			code = 2
		}
	}
	return nodeResult{out.String(), errb.String(), code}
}

// TestNodeLocal runs each command over the socket: what it prints, the
// requests it sends, and never an Authorization header, even with a token
// at hand.
func TestNodeLocal(t *testing.T) {
	f := &fakeNode{}
	sock := localNode(t, f)
	t.Setenv("BYZ_TOKEN", "byz_envsecret")
	tests := []struct {
		args   []string
		code   int
		stdout []string // each must appear
		stderr string
		reqs   []string
	}{
		{[]string{"status"}, 0, []string{
			"WARNING: persistence is OFF: the passphrase prompt was skipped",
			"node         mesh-1\n",
			"uptime       3d 4h 5m\n",
			"load         0.10 0.25 1.00\n",
			"memory       1.5 GiB available of 2.0 GiB\n",
			"storage      root   /               512.0 MiB free of 1.0 GiB\n             media  /run/byz/media  12.0 GiB free of 16.0 GiB\n",
			"persistence  OFF: changes live in RAM (512.0 MiB free of 1.0 GiB) and are lost at shutdown; the store byzantium/changes/save.dat (encrypted) is not used\n",
			"interfaces   lo     up    -                  127.0.0.1/8 ::1/128\n" +
				"             eth0   up    52:54:00:12:34:56  10.0.0.1/24\n" +
				"             wlan0  down  02:00:00:00:00:01\n",
		}, "", []string{"GET /api/v1/status"}},
		{[]string{"modules"}, 0, []string{"" +
			"NAME    VERSION  FOLDER    STATE      DEPENDS  SERVICES\n" +
			"base    1.0      base      loaded     -        -\n" +
			"tls     3.0.2    optional  active     base     -\n" +
			"ngircd  26.1     optional  active     tls      ngircd\n" +
			"webirc  -        optional  active     ngircd   webirc\n" +
			"olsrd   -        optional  available  base     olsrd,olsrd-mon\n",
		}, "", []string{"GET /api/v1/modules"}},
		{[]string{"services"}, 0, []string{"" +
			"NAME    MODULE  ENABLED  STATE        HEALTH   PORTS              RESTARTS\n" +
			"ngircd  ngircd  yes      running      ok       6667/tcp,6697/tcp  0\n" +
			"webirc  webirc  yes      failed       failing  8080/tcp           5\n" +
			"olsrd   olsrd   no       unavailable  -        -                  0\n" +
			"webirc: exit status 1\n",
		}, "", []string{"GET /api/v1/services"}},
		{[]string{"activate", "olsrd"}, 0, []string{"byz: activated olsrd\n"}, "", []string{"POST /api/v1/modules/olsrd/activate"}},
		{[]string{"activate", "tls"}, 0, []string{"byz: tls: nothing to change\n"}, "", []string{"POST /api/v1/modules/tls/activate"}},
		{[]string{"activate", "nope"}, 1, nil, "byz: node activate: byzd: no module nope\n", []string{"POST /api/v1/modules/nope/activate"}},
		{[]string{"activate", "broken"}, 1, nil, "byzd: broken needs gone, which is not on the media", []string{"POST /api/v1/modules/broken/activate"}},
		{[]string{"activate", "a b/c"}, 1, nil, "no module a b/c", []string{"POST /api/v1/modules/a%20b%2Fc/activate"}},
		{[]string{"enable", "ngircd"}, 0, []string{"byz: enabled ngircd: running (pid 412)\n"}, "", []string{"POST /api/v1/services/ngircd/enable"}},
		{[]string{"disable", "ngircd"}, 0, []string{"byz: disabled ngircd: stopped\n"}, "", []string{"POST /api/v1/services/ngircd/disable"}},
		{[]string{"restart", "webirc"}, 0, []string{"byz: restarted webirc: failed; last error: exit status 1\n"}, "", []string{"POST /api/v1/services/webirc/restart"}},
		{[]string{"enable", "nope"}, 1, nil, "byz: node enable: byzd: no service nope\n", []string{"POST /api/v1/services/nope/enable"}},
		{[]string{"logs"}, 0, []string{"2025-03-01 12:00:00Z INFO  byzd starting\n2025-03-01 12:00:01Z WARN  no DHCP answer on eth0\n"}, "", []string{"GET /api/v1/logs"}},
		{[]string{"logs", "--last", "2"}, 0, nil, "", []string{"GET /api/v1/logs?last=2"}},
		{[]string{"logs", "ngircd", "-n", "5"}, 0, []string{"2025-03-01 12:00:02Z INFO  ngircd: listening on 6667\n"}, "", []string{"GET /api/v1/services/ngircd/logs?last=5"}},
		{[]string{"--token", "byz_flagsecret", "modules"}, 0, nil, "", []string{"GET /api/v1/modules"}},

		// Usage errors: exit 2, nothing sent.
		{[]string{"activate"}, 2, nil, "accepts 1 arg(s), received 0", nil},
		{[]string{"enable", "a", "b"}, 2, nil, "byz node enable", nil},
		{[]string{"status", "now"}, 2, nil, "byz node status", nil},
		{[]string{"logs", "a", "b"}, 2, nil, "byz node logs", nil},
		{[]string{"logs", "--last", "-1"}, 2, nil, "--last -1", nil},
		{[]string{"frobnicate"}, 2, nil, `unknown command "frobnicate"`, nil},
		{[]string{"status", "--color"}, 2, nil, "--color", nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f.reset()
			r := runByz(t, nil, append([]string{"node", "--socket", sock}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks\n%s\ngot:\n%s", want, r.stdout)
				}
			}
			if tt.code != 0 && r.stdout != "" {
				t.Errorf("a failure printed on stdout: %q", r.stdout)
			}
			if got := f.requests(); !reflect.DeepEqual(got, tt.reqs) {
				t.Errorf("requests %q, want %q", got, tt.reqs)
			}
			for _, a := range f.auth {
				if a != "" {
					t.Errorf("Authorization %q sent over the socket", a)
				}
			}
		})
	}
}

// TestNodeJSON: --json prints the API's body, indented, for each command.
func TestNodeJSON(t *testing.T) {
	f := &fakeNode{}
	sock := localNode(t, f)
	tests := []struct {
		args []string
		want any
	}{
		{[]string{"status"}, fakeStatus},
		{[]string{"modules"}, fakeModules},
		{[]string{"services"}, fakeServices},
		{[]string{"logs"}, fakeLog},
		{[]string{"activate", "olsrd"}, nodeapi.ModuleChange{Activated: []string{"olsrd"}}},
		{[]string{"deactivate", "olsrd"}, nodeapi.ModuleChange{Deactivated: []string{"olsrd"}, Stopped: []string{"olsrd"}}},
		{[]string{"deactivate", "tls", "--cascade", "--yes"}, nodeapi.ModuleChange{Deactivated: []string{"webirc", "ngircd", "tls"}, Stopped: []string{"webirc", "ngircd"}}},
		{[]string{"enable", "ngircd"}, fakeServices[0]},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runByz(t, nil, append([]string{"node", "--socket", sock, "--json"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			wantJSON, _ := json.Marshal(tt.want)
			var got, want any
			json.Unmarshal(wantJSON, &want)
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %s\nwant %s", r.stdout, wantJSON)
			}
			if !strings.HasPrefix(r.stdout, "{\n  \"") && !strings.HasPrefix(r.stdout, "[\n  {") {
				t.Errorf("not indented:\n%s", r.stdout)
			}
		})
	}
}

// TestNodeRemote: over HTTPS the token goes in the Authorization header
// and is never printed, the certificate is pinned by its fingerprint, and
// without a fingerprint or a token byz refuses before connecting.
func TestNodeRemote(t *testing.T) {
	const token = "byz_0123456789secret"
	f := &fakeNode{token: token}
	u, fp := remoteNode(t, f)
	bare := strings.ToLower(strings.ReplaceAll(fp, ":", ""))
	wrong := tlscert.Fingerprint([]byte("another certificate"))
	tests := []struct {
		name   string
		env    string // BYZ_TOKEN
		args   []string
		code   int
		stdout string
		stderr []string
		sent   bool // whether a request reached the node
	}{
		{"token flag", "", []string{"--url", u, "--fingerprint", fp, "--token", token, "status"}, 0, "node         mesh-1\n", nil, true},
		{"token from the environment", token, []string{"--url", u, "--fingerprint", bare, "modules"}, 0, "olsrd", nil, true},
		{"host without scheme", token, []string{"--url", strings.TrimPrefix(u, "https://"), "--fingerprint", fp, "status"}, 0, "mesh-1", nil, true},
		{"wrong token", "", []string{"--url", u, "--fingerprint", fp, "--token", "byz_nottheone", "status"}, 1, "",
			[]string{"byz: node status: byzd: log in first", "check --token or BYZ_TOKEN"}, true},
		{"wrong fingerprint", token, []string{"--url", u, "--fingerprint", wrong, "status"}, 1, "",
			[]string{"the node's certificate has the fingerprint\n  " + fp, wrong, "intercepted"}, false},
		{"no fingerprint", token, []string{"--url", u, "status"}, 2, "",
			[]string{"--url needs --fingerprint", "byzd: TLS certificate sha256 fingerprint"}, false},
		{"bad fingerprint", token, []string{"--url", u, "--fingerprint", "4D:43", "status"}, 2, "", []string{"--fingerprint \"4D:43\""}, false},
		{"no token", "", []string{"--url", u, "--fingerprint", fp, "status"}, 2, "", []string{"BYZ_TOKEN", "Tokens page"}, false},
		{"plain http", token, []string{"--url", strings.Replace(u, "https:", "http:", 1), "--fingerprint", fp, "status"}, 2, "",
			[]string{"HTTPS only"}, false},
		{"a path", token, []string{"--url", u + "/api", "--fingerprint", fp, "status"}, 2, "", []string{"https://HOST[:PORT]"}, false},
		{"url and socket", token, []string{"--url", u, "--socket", "/tmp/s", "--fingerprint", fp, "status"}, 2, "", []string{"give one"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BYZ_TOKEN", tt.env)
			f.reset()
			r := runByz(t, nil, append([]string{"node"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("exit %d, stdout %q; want exit %d and %q\nstderr: %s", r.code, r.stdout, tt.code, tt.stdout, r.stderr)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
			if strings.Contains(r.stdout+r.stderr, token) {
				t.Errorf("the token was printed:\n%s%s", r.stdout, r.stderr)
			}
			reqs := f.requests()
			if (len(reqs) > 0) != tt.sent {
				t.Errorf("requests %q; want some: %v", reqs, tt.sent)
			}
			if tt.code == 0 && (len(f.auth) != 1 || f.auth[0] != "Bearer "+token) {
				t.Errorf("Authorization %q, want Bearer and the token", f.auth)
			}
		})
	}
}

// TestNodeDeactivate walks the refusals and confirmations around a
// module that others need: tls is needed by ngircd, which webirc needs.
func TestNodeDeactivate(t *testing.T) {
	f := &fakeNode{}
	sock := localNode(t, f)
	const (
		plain   = "POST /api/v1/modules/tls/deactivate"
		cascade = "POST /api/v1/modules/tls/deactivate?cascade=true"
		list    = "GET /api/v1/modules"
	)
	tests := []struct {
		name   string
		args   []string
		typed  string // on a terminal; "" means stdin is not one
		code   int
		stdout string
		stderr []string
		reqs   []string
	}{
		{"needed, no cascade", []string{"tls"}, "", 1, "",
			[]string{"byzd: tls is needed by active modules\ntls is needed by: ngircd\n", "byz node deactivate tls --cascade"}, []string{plain}},
		{"cascade without a terminal", []string{"tls", "--cascade"}, "", 2, "",
			[]string{"deactivating tls also deactivates ngircd, webirc, which depend on it", "add --yes"}, []string{plain, list}},
		{"cascade, yes", []string{"tls", "--cascade", "--yes"}, "", 0,
			"byz: stopped webirc, ngircd\nbyz: deactivated webirc, ngircd, tls\n", nil, []string{cascade}},
		{"cascade, confirmed", []string{"tls", "--cascade"}, "yes\n", 0, "byz: deactivated webirc, ngircd, tls\n",
			[]string{"Deactivating tls also deactivates ngircd, webirc, which depend on it, and stops their services.\nType yes to go on: "},
			[]string{plain, list, cascade}},
		{"cascade, declined", []string{"tls", "--cascade"}, "y\n", 1, "", []string{"not confirmed: nothing done"}, []string{plain, list}},
		{"not needed", []string{"ngircd"}, "", 0, "byz: stopped ngircd\nbyz: deactivated ngircd\n", nil,
			[]string{"POST /api/v1/modules/ngircd/deactivate"}},
		{"not needed, cascade asks nothing", []string{"ngircd", "--cascade"}, "", 0, "byz: deactivated ngircd\n", nil,
			[]string{"POST /api/v1/modules/ngircd/deactivate"}},
		{"refused", []string{"base", "--cascade"}, "", 1, "", []string{"byz: node deactivate: byzd: base is loaded at boot"},
			[]string{"POST /api/v1/modules/base/deactivate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.reset()
			var stdin io.Reader
			if tt.typed != "" {
				master, tty := openPTY(t)
				if _, err := master.WriteString(tt.typed); err != nil {
					t.Fatal(err)
				}
				stdin = tty
			}
			r := runByz(t, stdin, append([]string{"node", "--socket", sock, "deactivate"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("exit %d, stdout %q; want exit %d and %q\nstderr: %s", r.code, r.stdout, tt.code, tt.stdout, r.stderr)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
			if got := f.requests(); !reflect.DeepEqual(got, tt.reqs) {
				t.Errorf("requests %q, want %q", got, tt.reqs)
			}
		})
	}
}

// openPTY opens a pseudo-terminal pair: what is written to master is read
// from tty as typed on a terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		testenv.Unavailable(t, "no pseudo-terminal: "+err.Error())
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		testenv.Unavailable(t, "no pseudo-terminal: "+err.Error())
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestNodeNoDaemon: a socket nobody listens on is an error that says
// what to check.
func TestNodeNoDaemon(t *testing.T) {
	r := runByz(t, nil, "node", "--socket", filepath.Join(t.TempDir(), "none.sock"), "status")
	if r.code != 1 || !strings.Contains(r.stderr, "none.sock") || !strings.Contains(r.stderr, "is byzd running?") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	want := tlscert.Fingerprint([]byte("x"))
	bare := strings.ReplaceAll(want, ":", "")
	for _, in := range []string{want, strings.ToLower(want), bare, "SHA256:" + bare, " " + strings.ReplaceAll(want, ":", " ") + "\n"} {
		if got, err := normalizeFingerprint(in); got != want || err != nil {
			t.Errorf("normalizeFingerprint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "4D:43", bare + "00", "ZZ" + bare[2:]} {
		if got, err := normalizeFingerprint(in); err == nil {
			t.Errorf("normalizeFingerprint(%q) = %q, want an error", in, got)
		}
	}
}

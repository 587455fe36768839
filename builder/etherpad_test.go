package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"golang.org/x/sys/unix"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/ci/testenv"
	"byzantium/modules/entry"
	"byzantium/modules/manifest"
	"byzantium/modules/npm"
)

// TestEtherpadModule builds the optional etherpad module of the default
// spec (Etherpad 1.8.14 from its npm lock, and launch.js) and the nodejs
// module it depends on with the builder's module stage, checks that the
// pad module carries no native code and has the layout Etherpad's
// base-path search needs, then runs the pad service as byzd would: the
// base and both modules stacked read-only with overlayfs, its data folder
// bound in, settings.json rendered from the manifest's template, node
// chrooted as an unprivileged user. On the unix socket the web front uses,
// its start page and a pad page answer; two socket.io clients on one pad
// each see the other's edit, and the pad's text holds both. It writes
// nothing outside its data folder, and stops on SIGTERM.
func TestEtherpadModule(t *testing.T) {
	root := repoRoot(t)
	s, err := spec.Load(filepath.Join(root, "examples", "byzantium.yaml"), spec.Options{SkipInputChecks: true})
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]spec.Module{}
	for _, m := range s.Optional {
		mods[m.Name] = m
	}
	pad, node := mods["etherpad"], mods["nodejs"]
	if pad.Name == "" || node.Name == "" || len(s.Base) != 1 || s.Base[0].Name != "busybox" {
		t.Fatalf("want optional modules etherpad and nodejs and a busybox base")
	}
	if got := strings.Join(pad.Depends, ","); got != "nodejs" {
		t.Errorf("etherpad depends on [%s], want [nodejs]", got)
	}
	for _, src := range append(append([]string{}, node.Sources...), s.Base[0].Sources...) {
		testenv.RequireFile(t, src, "run make fetch")
	}
	if os.Getenv("BYZ_NPM_CACHE") == "" {
		t.Setenv("BYZ_NPM_CACHE", filepath.Join(root, npm.DefaultCacheDir))
	}

	s = &spec.Spec{File: s.File, Dir: s.Dir, Name: s.Name, Base: s.Base[:1], Optional: []spec.Module{node, pad}}
	b := &builder{spec: s, opts: Options{Epoch: epoch, Logf: t.Logf}, cache: &cache.Cache{Dir: t.TempDir()}, tool: "test"}
	start := time.Now()
	built, err := b.moduleStage()
	if errors.Is(err, npm.ErrNotCached) {
		testenv.Unavailable(t, fmt.Sprintf("Etherpad's npm tarballs: run make npm-fetch (%v)", err))
	}
	if err != nil {
		t.Fatalf("moduleStage: %v", err)
	}
	t.Logf("built in %v", time.Since(start).Round(time.Millisecond))
	padXZM := built[2].path
	fi, err := os.Stat(padXZM)
	if err != nil {
		t.Fatal(err)
	}
	tree := readTree(t, padXZM)
	t.Logf("optional/%s: %d bytes (%s), %d bytes unpacked in %d entries", built[2].file, fi.Size(), pad.Comp, tree.size, len(tree.entries))

	mf := moduleManifest(t, padXZM)
	if len(mf.Services) != 1 || mf.Services[0].Name != "pad" {
		t.Fatalf("manifest services = %+v, want one service pad", mf.Services)
	}
	svc := mf.Services[0]
	checkPadService(t, svc)

	t.Run("layout", func(t *testing.T) {
		for p := range tree.elfs {
			t.Errorf("%s: an ELF file in the etherpad module (a native add-on?)", p)
		}
		for _, p := range []string{"opt/etherpad/launch.js", "opt/etherpad/node_modules/src/package.json",
			"opt/etherpad/node_modules/src/node/server.js", "opt/etherpad/node_modules/src/static/skins/colibris/pad.css",
			"opt/etherpad/node_modules/src/.ep_initialized", "opt/etherpad/node_modules/express/package.json"} {
			if h, ok := tree.entries[p]; !ok || h.Type != entry.TypeRegular {
				t.Errorf("%s is not a file in the etherpad module", p)
			}
		}
		// Etherpad's root is the folder above the one named src that holds
		// its package; its plugins and hooks name it ep_etherpad-lite.
		if h := tree.entries["opt/etherpad/node_modules/ep_etherpad-lite"]; h.Type != entry.TypeSymlink || h.Linkname != "src" {
			t.Errorf("node_modules/ep_etherpad-lite is %+v, want a link to src", h)
		}
		// It serves the browser's libraries from its package's own
		// node_modules, where npm left none: links to the hoisted ones.
		for _, lib := range []string{"async", "js-cookie", "security", "tinycon", "underscore", "unorm"} {
			h := tree.entries["opt/etherpad/node_modules/src/node_modules/"+lib]
			if h.Type != entry.TypeSymlink || h.Linkname != "../../"+lib {
				t.Errorf("node_modules/src/node_modules/%s is %+v, want a link to ../../%s", lib, h, lib)
			}
			if _, ok := tree.entries["opt/etherpad/node_modules/"+lib+"/package.json"]; !ok {
				t.Errorf("node_modules/%s/package.json is not in the module", lib)
			}
		}
	})
	t.Run("pad", func(t *testing.T) { runPad(t, []string{padXZM, built[1].path, built[0].path}, svc, fi.Size()) })
}

// checkPadService: the declaration byzd gets is the confined one the docs
// promise.
func checkPadService(t *testing.T, svc manifest.Service) {
	t.Helper()
	if svc.User == "" || svc.User == "root" || len(svc.Capabilities) != 0 || svc.Privileged {
		t.Errorf("service %+v: want an unprivileged user with no capabilities", svc)
	}
	if len(svc.Command) < 2 || svc.Command[0] != "/usr/bin/node" || !strings.Contains(strings.Join(svc.Command, " "), " /opt/etherpad/launch.js --settings /etc/etherpad/settings.json ") {
		t.Errorf("command %v: want Debian's /usr/bin/node running launch.js with /etc/etherpad/settings.json", svc.Command)
	}
	data := svc.Data
	if data == "" {
		data = "/var/lib/" + svc.Name
	}
	// The files Etherpad writes beside its settings go to the data folder.
	for i, a := range svc.Command {
		if (a == "--sessionkey" || a == "--apikey") && (i+1 == len(svc.Command) || !strings.HasPrefix(svc.Command[i+1], data+"/")) {
			t.Errorf("command %v: %s not in the data folder %s", svc.Command, a, data)
		}
	}
	w := svc.Web
	if w == nil || w.Title == "" || w.Name != "pad" || !w.Publish || w.Health != "/" || w.FastCGI != nil ||
		!strings.HasPrefix(w.Socket, data+"/") || w.Addr != "" {
		t.Errorf("web %+v: want a published HTTP app named pad on a socket in %s, health /", w, data)
	}
	if len(svc.Config) != 1 || svc.Config[0].Path != "/etc/etherpad/settings.json" {
		t.Fatalf("config %+v: want /etc/etherpad/settings.json", svc.Config)
	}
	if w != nil && !strings.Contains(svc.Config[0].Template, `"port": "{{.Data}}/`+filepath.Base(w.Socket)+`"`) {
		t.Errorf("settings.json does not listen on the web socket %s", w.Socket)
	}
}

// padSettings is what the test reads back from the rendered settings.
type padSettings struct {
	IP, Port, SkinName, DefaultPadText string
	TrustProxy, Minify                 bool
	RequireAuthentication              bool
	Users                              map[string]any
	DBType                             string
	DBSettings                         struct{ Filename string }
	PadOptions                         map[string]any
}

// jsonComments removes Etherpad's // comments (outside strings) so that
// encoding/json reads its settings.
func jsonComments(s string) string {
	var out strings.Builder
	inStr, esc := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr:
			out.WriteByte(c)
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
			out.WriteByte(c)
		case c == '/' && i+1 < len(s) && s[i+1] == '/':
			for i < len(s) && s[i] != '\n' {
				i++
			}
			out.WriteByte('\n')
		default:
			out.WriteByte(c)
		}
	}
	return out.String()
}

// runPad stacks the modules (top first) as byzd's sandbox does, renders
// the service's settings, runs it and uses it as browsers would.
func runPad(t *testing.T, layers []string, svc manifest.Service, moduleSize int64) {
	dir := t.TempDir()
	sandbox, upper := stackModules(t, dir, layers)
	inRoot := func(p string) string { return filepath.Join(sandbox, filepath.FromSlash(p)) }

	// What byzd does before a start: the accounts, the data folder (a
	// fresh folder of the node's, bound in), the config files.
	serviceAccounts(t, sandbox, svc.User, serviceUID)
	hostData := serviceData(t, sandbox, dir, svc, serviceUID)
	data := svc.DataDir()
	// byzd's sandbox has /proc: node reads its memory use there.
	os.Mkdir(inRoot("proc"), 0o555)
	if err := unix.Mount("proc", inRoot("proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Fatalf("proc: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(inRoot("proc"), unix.MNT_DETACH) })
	var settings padSettings
	for path, text := range renderConfigs(t, sandbox, svc, manifest.TemplateData{Node: "testnode", Data: data, User: svc.User, Lang: "en"}, nil) {
		if err := json.Unmarshal([]byte(jsonComments(text)), &settings); err != nil {
			t.Fatalf("%s is not JSON with // comments: %v\n%s", path, err, text)
		}
	}
	// The defaults the docs promise, as Etherpad reads them.
	if settings.IP != "" || settings.Port != data+"/"+filepath.Base(svc.Web.Socket) || !settings.TrustProxy ||
		settings.SkinName != "colibris" || settings.RequireAuthentication || len(settings.Users) != 0 ||
		settings.DBType != "dirty" || !strings.HasPrefix(settings.DBSettings.Filename, data+"/") ||
		settings.PadOptions != nil || !strings.Contains(settings.DefaultPadText, "testnode") {
		t.Errorf("settings %+v: want the unix socket, trustProxy, colibris, no users, a dirty DB in %s, Etherpad's own padOptions (a partial object replaces them all and breaks the pad's script) and the node's name in the default text", settings, data)
	}
	// Something in the data folder from a killed process: a stale socket.
	if l, err := net.Listen("unix", filepath.Join(hostData, filepath.Base(svc.Web.Socket))); err == nil {
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		os.Chown(filepath.Join(hostData, filepath.Base(svc.Web.Socket)), serviceUID, serviceUID)
	}

	cmd := exec.Command(svc.Command[0], svc.Command[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range svc.Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     sandbox,
		Credential: &syscall.Credential{Uid: serviceUID, Gid: serviceUID, Groups: []uint32{}},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v in the sandbox: %v", svc.Command, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nEtherpad's output:\n%s", append(args, log.String())...)
	}

	sock := filepath.Join(hostData, filepath.Base(svc.Web.Socket))
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	get := func(path string) (int, string, error) {
		req, _ := http.NewRequest("GET", "http://pad.testnode.byzantium.mesh"+path, nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-For", "10.1.2.3")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}

	// The health check, as byzd's front asks it, until it answers.
	var status int
	var body string
	for deadline := time.Now().Add(60 * time.Second); ; {
		var err error
		if status, body, err = get(svc.Web.Health); err == nil {
			break
		}
		select {
		case err := <-exited:
			stopped = true
			fail("Etherpad exited before it answered: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			fail("Etherpad does not answer on %s: %v", sock, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	firstAnswer := time.Since(started)
	if status != 200 || !strings.Contains(body, "padname") {
		fail("GET %s: %d, want 200 and the start page's pad name form:\n%.500s", svc.Web.Health, status, body)
	}
	if status, body, err := get("/p/mesh-notes"); err != nil || status != 200 || !strings.Contains(body, `id="editorcontainer"`) ||
		!strings.Contains(body, "colibris") {
		fail("GET /p/mesh-notes: %d %v, want 200 and the colibris pad page:\n%.500s", status, err, body)
	}
	for _, p := range []string{"/static/js/pad.js", "/static/skins/colibris/pad.css", "/socket.io/socket.io.js", "/locales/fr.json"} {
		if status, _, err := get(p); err != nil || status != 200 {
			fail("GET %s: %d %v, want 200", p, status, err)
		}
	}
	// The pad's script as the page loads it: Etherpad's client modules
	// with the libraries it takes from src/node_modules.
	for _, b := range []struct{ script, lib string }{{"pad", "security/index.js"}, {"pad", "js-cookie/src/js.cookie.js"},
		{"timeslider", "js-cookie/src/js.cookie.js"}} {
		status, body, err := get("/javascripts/lib/ep_etherpad-lite/static/js/" + b.script + ".js?callback=require.define")
		if err != nil || status != 200 || !strings.Contains(body, `"`+b.lib+`"`) {
			fail("GET the %s bundle: %d %v, want 200 with %s", b.script, status, err, b.lib)
		}
	}
	if status, _, _ := get("/admin/"); status == 200 {
		t.Errorf("GET /admin/: 200 with no admin account")
	}

	t.Run("two writers", func(t *testing.T) { padTwoWriters(t, client, get) })

	rss, threads := padProc(t, cmd.Process.Pid)
	t.Logf("first answer %v after the start; RSS %d KiB and %d threads after two writers; module %d bytes",
		firstAnswer.Round(time.Millisecond), rss, threads, moduleSize)
	if limit := svc.Limits.MemoryMB; limit == 0 || rss > int64(limit)*1024*3/4 {
		t.Errorf("RSS %d KiB: want memory_mb (%d) at least 4/3 of it", rss, limit)
	}
	if limit := svc.Limits.Processes; limit == 0 || threads*2 > int64(limit) {
		t.Errorf("%d threads: want processes (%d) at least twice that", threads, limit)
	}

	// It runs as the service's user.
	procStatus, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^Uid:\s+%d\s+%d\s+%d\s+%d$`, serviceUID, serviceUID, serviceUID, serviceUID)).Match(procStatus) {
		t.Errorf("node's uids are not all %d:\n%s", serviceUID, procStatus)
	}

	// Stopped as byzd stops it: the pads are in the data folder.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("Etherpad on SIGTERM: %v\n%s", err, log.String())
		}
	case <-time.After(15 * time.Second):
		fail("Etherpad still runs 15 s after SIGTERM")
	}
	if db, err := os.ReadFile(filepath.Join(hostData, filepath.Base(settings.DBSettings.Filename))); err != nil || !bytes.Contains(db, []byte("pad:mesh-notes")) {
		t.Errorf("the dirty DB in the data folder has no pad:mesh-notes (%v)", err)
	}
	for _, bad := range []string{"EACCES", "EROFS", "EPERM", "uncaught", "Unhandled", "Failed to load"} {
		if strings.Contains(log.String(), bad) {
			t.Errorf("Etherpad said %q:\n%s", bad, log.String())
		}
	}

	// Nothing written outside the data folder: the upper layer holds only
	// what byzd put there.
	want := map[string]bool{"etc": true, "etc/passwd": true, "etc/group": true, "etc/etherpad": true,
		"etc/etherpad/settings.json": true, "proc": true, "var": true, "var/lib": true, strings.TrimPrefix(data, "/"): true}
	filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(upper, p)
		if err == nil && rel != "." && !want[filepath.ToSlash(rel)] {
			t.Errorf("written outside the data folder: /%s", rel)
		}
		return nil
	})
}

// padProc gives a process's resident memory in KiB and its threads (the
// processes limit counts threads).
func padProc(t *testing.T, pid int) (rss, threads int64) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	field := func(re string) int64 {
		m := regexp.MustCompile(re).FindSubmatch(status)
		if m == nil {
			t.Fatalf("no %s in /proc/%d/status", re, pid)
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		return n
	}
	return field(`(?m)^VmRSS:\s+(\d+) kB$`), field(`(?m)^Threads:\s+(\d+)$`)
}

// padSocket is a socket.io 2 client (Engine.IO 3, long polling with
// base64 framing) speaking Etherpad's pad protocol, as the pad's page does
// in a browser before it upgrades to a WebSocket.
type padSocket struct {
	client *http.Client
	url    string
	msgs   chan map[string]any
	errs   chan error
	done   chan struct{}
}

// padPayload splits an Engine.IO 3 text payload: packets of the form
// LENGTH:PACKET, the length counted in UTF-16 units as JavaScript does.
func padPayload(s string) ([]string, error) {
	var out []string
	for s != "" {
		i := strings.IndexByte(s, ':')
		n, err := strconv.Atoi(s[:max(i, 0)])
		if i < 0 || err != nil {
			return nil, fmt.Errorf("payload %.80q: no length", s)
		}
		s = s[i+1:]
		j, units := 0, 0
		for _, r := range s {
			if units >= n {
				break
			}
			units += len(utf16.Encode([]rune{r}))
			j += len(string(r))
		}
		if units != n {
			return nil, fmt.Errorf("payload %.80q: shorter than %d", s, n)
		}
		out = append(out, s[:j])
		s = s[j:]
	}
	return out, nil
}

func padEncode(packet string) string {
	return strconv.Itoa(len(utf16.Encode([]rune(packet)))) + ":" + packet
}

// padConnect opens a session and reads its packets until the test ends.
func padConnect(t *testing.T, client *http.Client, pad string) *padSocket {
	t.Helper()
	base := "http://pad.testnode.byzantium.mesh/socket.io/?EIO=3&transport=polling&b64=1&padId=" + url.QueryEscape(pad)
	ps := &padSocket{client: client, url: base, msgs: make(chan map[string]any, 64), errs: make(chan error, 1), done: make(chan struct{})}
	packets, err := ps.poll()
	if err != nil {
		t.Fatalf("socket.io handshake: %v", err)
	}
	var open struct{ Sid string }
	if len(packets) == 0 || !strings.HasPrefix(packets[0], "0") || json.Unmarshal([]byte(packets[0][1:]), &open) != nil || open.Sid == "" {
		t.Fatalf("socket.io handshake: %q, want an open packet with a sid", packets)
	}
	ps.url += "&sid=" + url.QueryEscape(open.Sid)
	go func() {
		defer close(ps.msgs)
		for {
			packets, err := ps.poll()
			select {
			case <-ps.done:
				return
			default:
			}
			if err != nil {
				ps.errs <- err
				return
			}
			for _, p := range packets {
				if !strings.HasPrefix(p, "42") {
					continue // connect, pings, noops
				}
				var ev []json.RawMessage
				var msg map[string]any
				if json.Unmarshal([]byte(p[2:]), &ev) != nil || len(ev) != 2 || string(ev[0]) != `"message"` || json.Unmarshal(ev[1], &msg) != nil {
					ps.errs <- fmt.Errorf("packet %.200q: not a message event", p)
					return
				}
				ps.msgs <- msg
			}
		}
	}()
	t.Cleanup(func() { close(ps.done) })
	return ps
}

func (ps *padSocket) poll() ([]string, error) {
	resp, err := ps.client.Get(ps.url + "&t=" + strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("poll: %d %v: %.200s", resp.StatusCode, err, body)
	}
	return padPayload(string(body))
}

func (ps *padSocket) send(t *testing.T, msg any) {
	t.Helper()
	ev, _ := json.Marshal([]any{"message", msg})
	resp, err := ps.client.Post(ps.url, "text/plain;charset=UTF-8", strings.NewReader(padEncode("42"+string(ev))))
	if err != nil {
		t.Fatalf("socket.io send: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("socket.io send: %d %q", resp.StatusCode, body)
	}
}

// wait returns the first message match accepts, within 20 s.
func (ps *padSocket) wait(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case msg, ok := <-ps.msgs:
			if !ok {
				t.Fatalf("waiting for %s: the session ended", what)
			}
			if match(msg) {
				return msg
			}
		case err := <-ps.errs:
			t.Fatalf("waiting for %s: %v", what, err)
		case <-timeout:
			t.Fatalf("no %s within 20 s", what)
		}
	}
}

// padData is a message's data object (COLLABROOM and CLIENT_VARS carry
// one), or nil.
func padData(msg map[string]any) map[string]any {
	d, _ := msg["data"].(map[string]any)
	return d
}

// padWriter is one browser on the pad: its session, author and revision.
type padWriter struct {
	*padSocket
	author string
	rev    float64
	text   string
}

func padJoin(t *testing.T, client *http.Client, pad, token string) *padWriter {
	t.Helper()
	ps := padConnect(t, client, pad)
	ps.send(t, map[string]any{"component": "pad", "type": "CLIENT_READY", "padId": pad, "sessionID": "null",
		"token": token, "password": nil, "protocolVersion": 2})
	vars := padData(ps.wait(t, "CLIENT_VARS", func(m map[string]any) bool { return m["type"] == "CLIENT_VARS" }))
	cv, _ := vars["collab_client_vars"].(map[string]any)
	at, _ := cv["initialAttributedText"].(map[string]any)
	w := &padWriter{padSocket: ps}
	w.author, _ = vars["userId"].(string)
	w.rev, _ = cv["rev"].(float64)
	w.text, _ = at["text"].(string)
	if w.author == "" || w.text == "" {
		t.Fatalf("CLIENT_VARS %.300v: no author or text", vars)
	}
	return w
}

// insert puts s at the start of the pad as w's author, as the editor sends
// a keystroke's change, and waits for the server to accept it.
func (w *padWriter) insert(t *testing.T, s string) {
	t.Helper()
	n := strconv.FormatInt(int64(len(s)), 36)
	cs := "Z:" + strconv.FormatInt(int64(len(w.text)), 36) + ">" + n + "*0+" + n + "$" + s
	w.send(t, map[string]any{"component": "pad", "type": "COLLABROOM", "data": map[string]any{
		"type": "USER_CHANGES", "baseRev": w.rev, "changeset": cs,
		"apool": map[string]any{"numToAttrib": map[string]any{"0": []string{"author", w.author}}, "nextNum": 1}}})
	acc := padData(w.wait(t, "ACCEPT_COMMIT", func(m map[string]any) bool {
		d := padData(m)
		return d != nil && d["type"] == "ACCEPT_COMMIT"
	}))
	w.rev, _ = acc["newRev"].(float64)
	w.text = s + w.text
}

// sees waits until the other writer's change arrives with s in it.
func (w *padWriter) sees(t *testing.T, s string) {
	t.Helper()
	d := padData(w.wait(t, "NEW_CHANGES with "+s, func(m map[string]any) bool {
		d := padData(m)
		cs, _ := d["changeset"].(string)
		return d != nil && d["type"] == "NEW_CHANGES" && strings.Contains(cs, "$"+s)
	}))
	w.rev, _ = d["newRev"].(float64)
	w.text = s + w.text
}

// padTwoWriters: two browsers on one pad each see the other's typing,
// and the pad's text has both.
func padTwoWriters(t *testing.T, client *http.Client, get func(string) (int, string, error)) {
	a := padJoin(t, client, "mesh-notes", "t.aaaaaaaaaaaaaaaaaaaa")
	b := padJoin(t, client, "mesh-notes", "t.bbbbbbbbbbbbbbbbbbbb")
	if a.author == b.author || a.text != b.text || !strings.Contains(a.text, "testnode") {
		t.Fatalf("writers %q and %q on a pad reading %q: want two authors and the default text naming the node", a.author, b.author, a.text)
	}
	a.insert(t, "Water at the school. ")
	b.sees(t, "Water at the school. ")
	b.insert(t, "Clinic open till 6. ")
	a.sees(t, "Clinic open till 6. ")
	if a.text != b.text || a.rev != b.rev {
		t.Errorf("the writers disagree: rev %v %q and rev %v %q", a.rev, a.text, b.rev, b.text)
	}
	status, body, err := get("/p/mesh-notes/export/txt")
	if err != nil || status != 200 || !strings.HasPrefix(body, "Clinic open till 6. Water at the school. ") {
		t.Errorf("GET /p/mesh-notes/export/txt: %d %v %.200q, want both writers' text first", status, err, body)
	}
}

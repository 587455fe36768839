package builder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/ci/testenv"
	"byzantium/modules/manifest"
	"byzantium/modules/npm"
)

// TestTheLoungeModule builds the optional nodejs and thelounge modules of
// the default spec (Debian's Node.js 18 from the locked packages, The Lounge
// from its npm lock) with the builder's module stage, checks that every
// library node loads is inside the nodejs module and that the npm module
// carries no native code, then runs the chat service as byzd would: the
// base and both modules stacked with overlayfs, its data folder bound in,
// config.js rendered from the manifest's template, node chrooted as an
// unprivileged user. A client on the unix socket the web front uses gets
// The Lounge's page, opens a socket.io session as a browser does, connects
// to a small IRC server of the test (standing for ngircd) and sends a
// message there, and receives one from it. The Lounge writes nothing
// outside its data folder.
func TestTheLoungeModule(t *testing.T) {
	root := repoRoot(t)
	s, err := spec.Load(filepath.Join(root, "examples", "byzantium.yaml"), spec.Options{SkipInputChecks: true})
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]spec.Module{}
	for _, m := range s.Optional {
		mods[m.Name] = m
	}
	node, lounge := mods["nodejs"], mods["thelounge"]
	if node.Name == "" || lounge.Name == "" || len(s.Base) != 1 || s.Base[0].Name != "busybox" {
		t.Fatalf("want optional modules nodejs and thelounge and a busybox base")
	}
	if want := []string{"busybox"}; !equalStrings(node.Depends, want) {
		t.Errorf("nodejs depends on %v, want %v", node.Depends, want)
	}
	if want := []string{"nodejs", "ngircd"}; !equalStrings(lounge.Depends, want) {
		t.Errorf("thelounge depends on %v, want %v", lounge.Depends, want)
	}
	for _, src := range append(append([]string{}, node.Sources...), s.Base[0].Sources...) {
		testenv.RequireFile(t, src, "run make fetch")
	}
	if os.Getenv("BYZ_NPM_CACHE") == "" {
		t.Setenv("BYZ_NPM_CACHE", filepath.Join(root, npm.DefaultCacheDir))
	}

	s = &spec.Spec{File: s.File, Dir: s.Dir, Name: s.Name, Base: s.Base[:1], Optional: []spec.Module{node, lounge}}
	b := &builder{spec: s, opts: Options{Epoch: epoch, Logf: t.Logf}, cache: &cache.Cache{Dir: t.TempDir()}, tool: "test"}
	start := time.Now()
	built, err := b.moduleStage()
	if errors.Is(err, npm.ErrNotCached) {
		testenv.Unavailable(t, fmt.Sprintf("The Lounge's npm tarballs: run make npm-fetch (%v)", err))
	}
	if err != nil {
		t.Fatalf("moduleStage: %v", err)
	}
	t.Logf("built in %v", time.Since(start).Round(time.Millisecond))
	busyboxXZM, nodeXZM, loungeXZM := built[0].path, built[1].path, built[2].path
	trees := map[string]*modTree{}
	for _, m := range built[1:] {
		fi, err := os.Stat(m.path)
		if err != nil {
			t.Fatal(err)
		}
		trees[m.file] = readTree(t, m.path)
		t.Logf("optional/%s: %d bytes, %d bytes unpacked", m.file, fi.Size(), trees[m.file].size)
	}
	nodeTree, loungeTree := trees[built[1].file], trees[built[2].file]

	mf := moduleManifest(t, loungeXZM)
	if len(mf.Services) != 1 || mf.Services[0].Name != "chat" {
		t.Fatalf("manifest services = %+v, want one service chat", mf.Services)
	}
	svc := mf.Services[0]
	checkChatService(t, svc)

	t.Run("libraries", func(t *testing.T) {
		checkLibraries(t, nodeTree, "usr/bin/node", 10, 2)
		// libnode108 loads these from /usr/share/nodejs (Debian builds
		// Node.js without its bundled copies).
		for _, js := range []string{"usr/share/nodejs/undici/undici-fetch.js", "usr/share/nodejs/cjs-module-lexer/lexer.js", "usr/share/nodejs/acorn/dist/acorn.js"} {
			if _, ok := nodeTree.entries[js]; !ok {
				t.Errorf("%s is not in the nodejs module", js)
			}
		}
	})
	t.Run("no native code", func(t *testing.T) {
		for p := range loungeTree.elfs {
			t.Errorf("%s: an ELF file in the thelounge module (a native add-on?)", p)
		}
		for _, p := range []string{"opt/thelounge/start.js", "opt/thelounge/node_modules/thelounge/dist/server/index.js",
			"opt/thelounge/node_modules/thelounge/public/index.html"} {
			if _, ok := loungeTree.entries[p]; !ok {
				t.Errorf("%s is not in the thelounge module", p)
			}
		}
	})
	t.Run("chat", func(t *testing.T) { runChat(t, []string{loungeXZM, nodeXZM, busyboxXZM}, svc) })
}

func equalStrings(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

// checkChatService: the declaration byzd gets is the confined one the
// docs promise.
func checkChatService(t *testing.T, svc manifest.Service) {
	t.Helper()
	if svc.User == "" || svc.User == "root" || len(svc.Capabilities) != 0 || svc.Privileged {
		t.Errorf("service %+v: want an unprivileged user with no capabilities", svc)
	}
	if !equalStrings(svc.Depends, []string{"ngircd"}) {
		t.Errorf("chat depends on %v, want [ngircd]: IRC first", svc.Depends)
	}
	if len(svc.Command) == 0 || svc.Command[0] != "/usr/bin/node" {
		t.Errorf("command %v: want Debian's /usr/bin/node", svc.Command)
	}
	data := svc.Data
	if data == "" {
		data = "/var/lib/" + svc.Name
	}
	if svc.Environment["THELOUNGE_HOME"] != data {
		t.Errorf("THELOUNGE_HOME = %q, want the data folder %s", svc.Environment["THELOUNGE_HOME"], data)
	}
	w := svc.Web
	if w == nil || w.Title == "" || !w.Publish || w.Health != "/" || w.FastCGI != nil ||
		!strings.HasPrefix(w.Socket, data+"/") || w.Addr != "" {
		t.Errorf("web %+v: want a published HTTP app on a socket in %s, health /", w, data)
	}
	if len(svc.Config) != 1 || svc.Config[0].Path != "/etc/thelounge/config.js" {
		t.Fatalf("config %+v: want /etc/thelounge/config.js", svc.Config)
	}
	c := svc.Config[0].Template
	for _, want := range []string{
		`public: true`, `reverseProxy: true`, `host: "unix:{{.Data}}/` + filepath.Base(w.Socket) + `"`,
		`lockNetwork: true`, `prefetch: false`, `messageStorage: []`, `fileUpload: {enable: false}`,
		`host: "127.0.0.1"`, `port: 6667`, `tls: false`, `theme: "default"`,
	} {
		if !strings.Contains(c, want) {
			t.Errorf("config.js has no %q", want)
		}
	}
	if regexp.MustCompile(`(?i)password:\s*"[^"]`).MatchString(c) {
		t.Errorf("config.js sets a password")
	}
}

// runChat stacks the modules (top first) as byzd's sandbox does, renders
// the service's config, runs it and uses it as a browser would.
func runChat(t *testing.T, layers []string, svc manifest.Service) {
	dir := t.TempDir()
	sandbox, upper := stackModules(t, dir, layers)

	// What byzd does before a start: the accounts, the data folder (a
	// fresh folder of the node's, bound in), the config files.
	serviceAccounts(t, sandbox, svc.User, serviceUID)
	hostData := serviceData(t, sandbox, dir, svc, serviceUID)
	data := svc.DataDir()

	irc := startFakeIRC(t)
	ircPort := regexp.MustCompile(`(?m)^(\s*port:\s*)6667,$`)
	renderConfigs(t, sandbox, svc, manifest.TemplateData{Node: "testnode", Data: data, User: svc.User, Lang: "en"}, func(path, text string) string {
		if path != "/etc/thelounge/config.js" {
			return text
		}
		// ngircd's port may be taken on this machine: the fake's.
		if n := len(ircPort.FindAllString(text, -1)); n != 1 {
			t.Fatalf("%s: %d lines port: 6667, want 1:\n%s", path, n, text)
		}
		return ircPort.ReplaceAllString(text, "${1}"+strconv.Itoa(irc.port)+",")
	})
	// What byzd wrote: nothing else may appear in the upper layer.
	wrote := upperFiles(t, upper)

	// The web front's way in: the socket in the data folder.
	sock := filepath.Join(hostData, strings.TrimPrefix(svc.Web.Socket, data+"/"))
	hc := &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	run := startChat(t, sandbox, svc, hc)
	fail := run.fail
	page := run.page
	for _, want := range []string{"<title>The Lounge</title>", `name="viewport"`} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("its page has no %q:\n%.600s", want, page)
		}
	}

	// A browser's socket.io session (Engine.IO 4 over long polling).
	sio := openSocketIO(t, hc, "http://chat.testnode.byzantium.mesh/socket.io/")
	t.Logf("socket.io session %s", sio.sid)
	sio.waitEvent(t, "init", 20*time.Second)
	// What the Connect form sends (with lockNetwork it shows no network
	// fields): the node's IRC server whatever host and port a client asks
	// for.
	sio.emit(t, "network:new", map[string]any{
		"host": "irc.example.invalid", "port": "6697", "tls": true, "rejectUnauthorized": true,
		"nick": "phone", "username": "phone", "realname": "A phone", "join": "#byzantium", "password": "",
	})
	ev := sio.waitEvent(t, "network", 20*time.Second)
	var netw struct {
		Network struct {
			Name     string `json:"name"`
			Channels []struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
			} `json:"channels"`
		} `json:"network"`
	}
	if err := json.Unmarshal(ev, &netw); err != nil {
		fail("network event %s: %v", ev, err)
	}
	chanID := -1
	for _, c := range netw.Network.Channels {
		if c.Name == "#byzantium" {
			chanID = c.ID
		}
	}
	if netw.Network.Name != "testnode" || chanID < 0 {
		fail("network event %s: want network testnode with #byzantium", ev)
	}
	irc.waitLine(t, "JOIN #byzantium", 20*time.Second)
	if nick := irc.nick(); nick != "phone" {
		t.Errorf("IRC nick %q, want phone", nick)
	}
	sio.emit(t, "input", map[string]any{"target": chanID, "text": "hello from a phone"})
	irc.waitLine(t, "PRIVMSG #byzantium :hello from a phone", 20*time.Second)
	irc.send(":alice!alice@mesh PRIVMSG #byzantium :hello from IRC\r\n")
	for deadline := time.Now().Add(20 * time.Second); ; {
		ev := sio.waitEvent(t, "msg", time.Until(deadline))
		var m struct {
			Chan int `json:"chan"`
			Msg  struct {
				Text string `json:"text"`
				From struct {
					Nick string `json:"nick"`
				} `json:"from"`
			} `json:"msg"`
		}
		json.Unmarshal(ev, &m)
		if m.Chan == chanID && m.Msg.Text == "hello from IRC" && m.Msg.From.Nick == "alice" {
			break
		}
	}
	t.Logf("a message went from the web client to IRC and one came back")
	// Browsers move the session to a WebSocket once it is open.
	checkUpgrade(t, sock, sio.sid)

	// Its footprint, and it runs as the service's user.
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", run.cmd.Process.Pid))
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^Uid:\s+%d\s+%d\s+%d\s+%d$`, serviceUID, serviceUID, serviceUID, serviceUID)).Match(status) {
		t.Errorf("node's uids are not all %d:\n%s", serviceUID, status)
	}
	rss := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(status)
	threads := regexp.MustCompile(`(?m)^Threads:\s+(\d+)`).FindSubmatch(status)
	if rss != nil && threads != nil {
		kb, _ := strconv.Atoi(string(rss[1]))
		n, _ := strconv.Atoi(string(threads[1]))
		t.Logf("node: RSS %d KiB, %d threads (limits: %d MB, %d processes)", kb, n, svc.Limits.MemoryMB, svc.Limits.Processes)
		if svc.Limits.MemoryMB > 0 && kb/1024 > svc.Limits.MemoryMB*3/4 {
			t.Errorf("RSS %d KiB is past three quarters of memory_mb %d", kb, svc.Limits.MemoryMB)
		}
		if svc.Limits.Processes > 0 && n > svc.Limits.Processes/2 {
			t.Errorf("%d threads: processes %d leaves too little room", n, svc.Limits.Processes)
		}
	}

	// Killed (by the cgroup's memory limit, say), it leaves its socket
	// behind; started again, it listens all the same, on a data folder it
	// used before. byzd stops it with SIGTERM.
	run.kill()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Logf("no socket left after SIGKILL (%v): the restart below checks less", err)
	}
	run2 := startChat(t, sandbox, svc, hc)
	// It waits for its open connections to close, 3 s at most, then
	// exits 1: none are open here, and it exits 0.
	hc.CloseIdleConnections()
	run2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-run2.exited:
		run2.stopped = true
		if err != nil {
			run2.fail("The Lounge on SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		run2.fail("The Lounge still runs 10 s after SIGTERM")
	}
	// Everything it wrote is in its data folder.
	if extra := upperFiles(t, upper); !equalStrings(extra, wrote) {
		t.Errorf("The Lounge wrote outside its data folder: the upper layer holds %v, byzd wrote %v", extra, wrote)
	}
	var inData []string
	filepath.Walk(hostData, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != hostData {
			rel, _ := filepath.Rel(hostData, p)
			inData = append(inData, rel)
		}
		return nil
	})
	t.Logf("its data folder: %v", inData)
	for i, r := range []*chatRun{run, run2} {
		for _, bad := range []string{"[ERROR]", "[WARN]", "Error"} {
			if strings.Contains(r.log.String(), bad) {
				t.Errorf("The Lounge (run %d) said %q:\n%s", i+1, bad, r.log.String())
			}
		}
		if testing.Verbose() {
			t.Logf("The Lounge's output, run %d:\n%s", i+1, r.log.String())
		}
	}
}

// chatRun is the chat service running in its sandbox.
type chatRun struct {
	t       *testing.T
	cmd     *exec.Cmd
	exited  chan error
	stopped bool
	log     syncBuffer
	page    []byte // its page at /
}

func (r *chatRun) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf(format+"\nThe Lounge's output:\n%s", append(args, r.log.String())...)
}

func (r *chatRun) kill() {
	if !r.stopped {
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.exited
		r.stopped = true
	}
}

// startChat runs the service's command chrooted in the sandbox as its
// unprivileged user, as byzd would, and waits until its health path
// answers 200 on the socket hc dials.
func startChat(t *testing.T, sandbox string, svc manifest.Service, hc *http.Client) *chatRun {
	t.Helper()
	r := &chatRun{t: t, exited: make(chan error, 1)}
	r.cmd = exec.Command(svc.Command[0], svc.Command[1:]...)
	r.cmd.Dir = "/"
	r.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range svc.Environment {
		r.cmd.Env = append(r.cmd.Env, k+"="+v)
	}
	r.cmd.Stdout, r.cmd.Stderr = &r.log, &r.log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     sandbox,
		Credential: &syscall.Credential{Uid: serviceUID, Gid: serviceUID, Groups: []uint32{}},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	started := time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting %v in the sandbox: %v", svc.Command, err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(r.kill)
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := hc.Get("http://chat.testnode.byzantium.mesh" + svc.Web.Health)
		if err == nil {
			r.page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				r.fail("GET %s: %s", svc.Web.Health, resp.Status)
			}
			break
		}
		select {
		case err := <-r.exited:
			r.stopped = true
			r.fail("The Lounge exited before it answered: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			r.fail("no answer on its socket: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("The Lounge answered on its socket %v after its start", time.Since(started).Round(time.Millisecond))
	return r
}

// upperFiles lists the files (not folders) in an overlay's upper layer.
func upperFiles(t *testing.T, upper string) []string {
	t.Helper()
	var files []string
	err := filepath.Walk(upper, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			rel, _ := filepath.Rel(upper, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// syncBuffer is a bytes.Buffer two goroutines may write and read.
// fakeIRC is just enough of an IRC server for one client: it registers
// it, echoes its JOINs and records every line it sends.
type fakeIRC struct {
	port  int
	mu    sync.Mutex
	lines []string
	conn  net.Conn
	seen  chan struct{}
}

func startFakeIRC(t *testing.T) *fakeIRC {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fakeIRC{port: l.Addr().(*net.TCPAddr).Port, seen: make(chan struct{}, 1)}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		f.mu.Lock()
		f.conn = c
		f.mu.Unlock()
		nick := "*"
		lines := bufio.NewScanner(c)
		for lines.Scan() {
			line := lines.Text()
			f.mu.Lock()
			f.lines = append(f.lines, line)
			f.mu.Unlock()
			select {
			case f.seen <- struct{}{}:
			default:
			}
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			switch strings.ToUpper(fields[0]) {
			case "CAP":
				if len(fields) > 1 && fields[1] == "LS" {
					fmt.Fprintf(c, ":fake.irc CAP * LS :\r\n")
				}
			case "NICK":
				nick = strings.TrimPrefix(fields[1], ":")
			case "USER":
				fmt.Fprintf(c, ":fake.irc 001 %s :Welcome\r\n:fake.irc 005 %s CHANTYPES=# PREFIX=(ov)@+ NETWORK=testnode :are supported\r\n:fake.irc 422 %s :No MOTD\r\n", nick, nick, nick)
			case "JOIN":
				ch := strings.TrimPrefix(fields[1], ":")
				fmt.Fprintf(c, ":%s!%s@mesh JOIN %s\r\n:fake.irc 353 %s = %s :%s alice\r\n:fake.irc 366 %s %s :End of NAMES\r\n", nick, nick, ch, nick, ch, nick, nick, ch)
			case "PING":
				fmt.Fprintf(c, ":fake.irc PONG fake.irc %s\r\n", strings.Join(fields[1:], " "))
			}
		}
	}()
	return f
}

// waitLine waits until the client has sent a line with this prefix.
func (f *fakeIRC) waitLine(t *testing.T, prefix string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		f.mu.Lock()
		for _, l := range f.lines {
			if strings.HasPrefix(l, prefix) {
				f.mu.Unlock()
				return
			}
		}
		got := append([]string{}, f.lines...)
		f.mu.Unlock()
		select {
		case <-f.seen:
		case <-deadline:
			t.Fatalf("the IRC server got no %q in %v; it got %q", prefix, d, got)
		}
	}
}

func (f *fakeIRC) nick() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	nick := ""
	for _, l := range f.lines {
		if fields := strings.Fields(l); len(fields) == 2 && fields[0] == "NICK" {
			nick = strings.TrimPrefix(fields[1], ":")
		}
	}
	return nick
}

func (f *fakeIRC) send(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	io.WriteString(f.conn, s)
}

// socketIO is a socket.io client on Engine.IO 4's long-polling transport,
// as a browser starts one: enough to send events and wait for them.
type socketIO struct {
	hc     *http.Client
	url    string
	sid    string
	events chan sioEvent
	errs   chan error
}

type sioEvent struct {
	name string
	arg  json.RawMessage
}

func openSocketIO(t *testing.T, hc *http.Client, base string) *socketIO {
	t.Helper()
	resp, err := hc.Get(base + "?EIO=4&transport=polling")
	if err != nil {
		t.Fatalf("socket.io handshake: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var open struct {
		SID      string   `json:"sid"`
		Upgrades []string `json:"upgrades"`
	}
	// An Engine.IO open packet: "0" and its JSON.
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("0")) || json.Unmarshal(body[1:], &open) != nil || open.SID == "" {
		t.Fatalf("socket.io handshake: %s %q, want an open packet with a session id", resp.Status, body)
	}
	s := &socketIO{hc: hc, url: base + "?EIO=4&transport=polling&sid=" + open.SID, sid: open.SID,
		events: make(chan sioEvent, 256), errs: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.post(t, "40") // connect to the main namespace
	go s.poll(ctx)
	return s
}

func (s *socketIO) post(t *testing.T, packet string) {
	t.Helper()
	resp, err := s.hc.Post(s.url, "text/plain;charset=UTF-8", strings.NewReader(packet))
	if err != nil {
		t.Fatalf("socket.io: sending %.60q: %v", packet, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("socket.io: sending %.60q: %s %q", packet, resp.Status, body)
	}
}

// poll reads packets until the session ends, answering pings.
func (s *socketIO) poll(ctx context.Context) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url, nil)
		resp, err := s.hc.Do(req)
		if err != nil {
			s.errs <- err
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			s.errs <- fmt.Errorf("poll: %s %q", resp.Status, body)
			return
		}
		for _, p := range strings.Split(string(body), "\x1e") {
			switch {
			case p == "2": // ping
				r, err := s.hc.Post(s.url, "text/plain;charset=UTF-8", strings.NewReader("3"))
				if err == nil {
					r.Body.Close()
				}
			case p == "1": // close
				s.errs <- errors.New("the server closed the session")
				return
			case strings.HasPrefix(p, "42"): // an event: ["name", arg...]
				var msg []json.RawMessage
				var name string
				if json.Unmarshal([]byte(p[2:]), &msg) != nil || len(msg) == 0 || json.Unmarshal(msg[0], &name) != nil {
					continue
				}
				ev := sioEvent{name: name}
				if len(msg) > 1 {
					ev.arg = msg[1]
				}
				s.events <- ev
			case strings.HasPrefix(p, "44"): // connect error
				s.errs <- fmt.Errorf("socket.io connect error %s", p[2:])
				return
			}
		}
	}
}

func (s *socketIO) emit(t *testing.T, name string, arg any) {
	t.Helper()
	b, err := json.Marshal([]any{name, arg})
	if err != nil {
		t.Fatal(err)
	}
	s.post(t, "42"+string(b))
}

// waitEvent returns the argument of the next event of that name, skipping
// others.
func (s *socketIO) waitEvent(t *testing.T, name string, d time.Duration) json.RawMessage {
	t.Helper()
	deadline := time.After(d)
	var skipped []string
	for {
		select {
		case ev := <-s.events:
			if ev.name == name {
				return ev.arg
			}
			skipped = append(skipped, ev.name)
		case err := <-s.errs:
			t.Fatalf("socket.io, waiting for %s: %v (events: %v)", name, err, skipped)
		case <-deadline:
			t.Fatalf("socket.io: no %s event in %v (events: %v)", name, d, skipped)
		}
	}
}

// checkUpgrade asks for the socket.io session's WebSocket as a browser
// does after its first polls, and wants 101 Switching Protocols and the
// Engine.IO probe answered over it.
func checkUpgrade(t *testing.T, sock, sid string) {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /socket.io/?EIO=4&transport=websocket&sid=%s HTTP/1.1\r\nHost: chat.testnode.byzantium.mesh\r\n"+
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", sid)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("WebSocket upgrade: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("WebSocket upgrade: %s %v, want 101 with the key's accept value", resp.Status, resp.Header)
	}
	// A masked text frame "2probe"; the server answers "3probe".
	payload := []byte("2probe")
	mask := []byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(payload))}
	frame = append(frame, mask...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	c.Write(frame)
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatalf("WebSocket: no answer to the probe: %v", err)
	}
	body := make([]byte, head[1]&0x7f)
	io.ReadFull(br, body)
	if head[0] != 0x81 || string(body) != "3probe" {
		t.Fatalf("WebSocket: probe answered with %x %q, want a text frame 3probe", head, body)
	}
}

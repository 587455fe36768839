package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/overlays"
	"byzantium/runtime/nodeapi"

	"golang.org/x/sys/unix"

	"byzantium/ci/testenv"
)

// localClient talks HTTP to the unix socket at sock.
func localClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// serveLocal serves the local API for root on a socket in a temp folder.
func serveLocal(t *testing.T, root string) (*http.Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "byzd.sock")
	ln, err := ListenLocal(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: (&Local{Root: root, Log: slog.New(slog.DiscardHandler)}).Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return localClient(sock), sock
}

func call(t *testing.T, c *http.Client, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://byzd"+path, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLocalSave: in changes=EXIT: mode a save copies the RAM's upper
// layer to the store and /api/v1/persistence then reports it; in other
// modes a save is refused as pointless.
func TestLocalSave(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, overlays.PersistenceJSON), `{"mode":"exit","store":"/dev/vdb","backing":"device"}`)
	writeFile(t, filepath.Join(root, overlays.RWDir, "upper/root/notes.txt"), "meet at the library\n")
	if err := os.MkdirAll(filepath.Join(root, overlays.StoreDir), 0o755); err != nil {
		t.Fatal(err)
	}
	c, sock := serveLocal(t, root)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", fi.Mode(), err)
	}

	var r nodeapi.SaveResult
	if code := call(t, c, "POST", "/api/v1/persistence/save", "", &r); code != http.StatusOK || r.Error != "" || r.Copied != 2 {
		t.Errorf("save: %d %+v", code, r)
	}
	if b, err := os.ReadFile(filepath.Join(root, overlays.StoreDir, "upper/root/notes.txt")); err != nil || string(b) != "meet at the library\n" {
		t.Errorf("the store after a save: %q, %v", b, err)
	}
	var p nodeapi.Persistence
	if code := call(t, c, "GET", "/api/v1/persistence", "", &p); code != http.StatusOK || p.Mode != "exit" || p.Backing != "device" ||
		p.LastSave == nil || p.LastSave.Copied != 2 || p.StoreSizeBytes == 0 {
		t.Errorf("persistence after a save: %d %+v", code, p)
	}

	writeFile(t, filepath.Join(root, overlays.PersistenceJSON), `{"mode":"savedat","store":"byzantium/changes/save.dat"}`)
	var e nodeapi.ErrorBody
	if code := call(t, c, "POST", "/api/v1/persistence/save", "", &e); code != http.StatusConflict || !strings.Contains(e.Error, "mode is savedat") {
		t.Errorf("save in savedat mode: %d %q", code, e.Error)
	}
}

// TestLocalSaveDat makes a save.dat on a media (a tmpfs mounted where
// byz-init mounts the media, read-only as byz-init leaves it) and checks
// every refusal.
func TestLocalSaveDat(t *testing.T) {
	testenv.RequireRoot(t) // to mount the media's stand-in
	root := t.TempDir()
	c, _ := serveLocal(t, root)
	var e nodeapi.ErrorBody
	if code := call(t, c, "POST", "/api/v1/persistence/savedat", `{"size_bytes":67108864}`, &e); code != http.StatusConflict || !strings.Contains(e.Error, "not mounted") {
		t.Errorf("without media: %d %q", code, e.Error)
	}
	media := filepath.Join(root, overlays.MediaDir)
	if err := os.MkdirAll(media, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", media, "tmpfs", unix.MS_RDONLY, "size=100m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(media, unix.MNT_DETACH) })

	for _, tc := range []struct{ body, want string }{
		{`{"size_bytes":`, "the request body"},
		{`{"size_bytes":67108864,"colour":"red"}`, "unknown field"},
		{`{}`, "size_bytes: give"},
		{`{"size_bytes":1048576}`, "at least 32 MiB"},
		{`{"size_bytes":1073741824}`, "choose a smaller size"},
		// The API's KDF costs get savedat's (luks2's) one check, before
		// any key derivation: 10^9 passes would run for days.
		{`{"size_bytes":67108864,"passphrase":"mesh at dawn","kdf_time":1000000000}`, "1000000000 passes"},
		{`{"size_bytes":67108864,"passphrase":"mesh at dawn","kdf_memory_kib":16,"kdf_time":1}`, "16 KiB"},
	} {
		if code := call(t, c, "POST", "/api/v1/persistence/savedat", tc.body, &e); code/100 != 4 && code != http.StatusInsufficientStorage || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %q, want %q", tc.body, code, e.Error, tc.want)
		}
	}
	var res nodeapi.SaveDatResult
	if code := call(t, c, "POST", "/api/v1/persistence/savedat", `{"size_bytes":67108864}`, &res); code != http.StatusCreated || res.Path != overlays.DefaultSaveDat {
		t.Fatalf("create: %d %+v", code, res)
	}
	if fi, err := os.Stat(filepath.Join(media, overlays.DefaultSaveDat)); err != nil || fi.Size() != 64<<20 {
		t.Errorf("the save.dat: %v", err)
	}
	var sfs unix.Statfs_t
	if unix.Statfs(media, &sfs); sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("the media was left writable")
	}
	if code := call(t, c, "POST", "/api/v1/persistence/savedat", `{"size_bytes":67108864}`, &e); code != http.StatusConflict || !strings.Contains(e.Error, "never overwritten") {
		t.Errorf("a second create: %d %q", code, e.Error)
	}
}

// TestLocalPeerCheck: a connection from another uid than the daemon's is
// closed unanswered, whatever the socket's mode.
func TestLocalPeerCheck(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := ListenLocal(sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*peerListener).uid = uint32(os.Geteuid()) + 1
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "answered") })}
	go srv.Serve(ln)
	defer srv.Close()
	resp, err := localClient(sock).Get("http://byzd/")
	if err == nil {
		resp.Body.Close()
		t.Errorf("a connection from another uid was answered: %s", resp.Status)
	}
}

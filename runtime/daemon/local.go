package daemon

import (
	"byzantium/runtime/changes"
	"byzantium/runtime/nodeapi"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"golang.org/x/sys/unix"
)

// Local is the API served on the unix socket. Whoever can connect is the
// node's root (the socket is mode 0600 and each peer's uid is checked),
// so it needs no login; the HTTPS API of issue 5 puts the same actions
// behind authentication.
type Local struct {
	Root string // the running root, "/" on a node
	Log  *slog.Logger
}

// Handler routes the local API.
func (l *Local) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/persistence", l.persistence)
	mux.HandleFunc("POST /api/v1/persistence/save", l.save)
	mux.HandleFunc("POST /api/v1/persistence/savedat", l.saveDat)
	return mux
}

func (l *Local) persistence(w http.ResponseWriter, _ *http.Request) {
	p := ReadPersistence(l.Root)
	if p == nil {
		writeError(w, &httpError{http.StatusNotFound, errors.New("no persistence report: this system was not booted by byz-init")})
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (l *Local) save(w http.ResponseWriter, _ *http.Request) {
	r, err := changes.SaveNode(l.Root)
	if errors.Is(err, changes.ErrNotExitMode) {
		writeError(w, &httpError{http.StatusConflict, fmt.Errorf("%w: changes reach the store as they are made", err)})
		return
	}
	if err != nil {
		l.Log.Error("saving the changes", "err", err)
		writeError(w, err)
		return
	}
	l.Log.Info("changes saved", "entries", r.Entries, "copied", r.Copied, "removed", r.Removed, "bytes", r.Bytes)
	writeJSON(w, http.StatusOK, r)
}

func (l *Local) saveDat(w http.ResponseWriter, req *http.Request) {
	var body nodeapi.SaveDatRequest
	if !decode(w, req, &body) {
		return
	}
	res, err := CreateSaveDat(l.Root, body)
	body.Passphrase = ""
	if err != nil {
		l.Log.Warn("creating a save.dat", "err", err)
		writeError(w, err)
		return
	}
	l.Log.Info("save.dat created for the next boot", "path", res.Path, "size", res.SizeBytes, "encrypted", res.Encrypted)
	writeJSON(w, http.StatusCreated, res)
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		status = he.status
	}
	writeJSON(w, status, nodeapi.ErrorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ListenLocal opens the unix socket at path, readable and writable by
// its owner only, replacing a stale socket from an earlier run.
func ListenLocal(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("daemon: the local socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("daemon: the local socket: %w", err)
	}
	return &peerListener{Listener: ln, uid: uint32(os.Geteuid())}, nil
}

// peerListener accepts only connections from processes running as uid
// (the daemon's own, root on a node): the socket's mode already says so,
// this holds even if the mode is changed.
type peerListener struct {
	net.Listener
	uid uint32
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		raw, err := uc.SyscallConn()
		if err != nil {
			c.Close()
			continue
		}
		var cred *unix.Ucred
		var cerr error
		raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
		if cerr != nil || cred.Uid != l.uid {
			c.Close()
			continue
		}
		return c, nil
	}
}

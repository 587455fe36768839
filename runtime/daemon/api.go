package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"byzantium/runtime/auth"
	"byzantium/runtime/nodeapi"
)

// routes is the panel and the API: every route but the public ones
// passes requireLogin (see Handler). docs/api.md documents the API.
func (w *Web) routes() []route {
	static, _ := staticFS()
	return append([]route{
		// Public: the health check, the login and setup pages, the
		// language switch, the static files.
		{"GET /healthz", true, w.healthz},
		{"GET /login", true, w.loginPage},
		{"POST /login", true, w.loginPost},
		{"GET /setup", true, w.setupPage},
		{"POST /setup", true, w.setupPost},
		{"GET /lang", true, w.setLang},
		{"GET /static/", true, http.StripPrefix("/static/", http.FileServerFS(static)).ServeHTTP},
		{"POST /api/v1/login", true, w.apiLogin},

		// The panel.
		{"GET /{$}", false, w.statusPage},
		{"POST /logout", false, w.logout},
		{"GET /settings", false, w.settingsPage},
		{"POST /settings", false, w.settingsPost},
		{"GET /tokens", false, w.tokensPage},
		{"POST /tokens", false, w.tokensPost},
		{"POST /tokens/{id}/revoke", false, w.tokenRevoke},
		{"GET /logs", false, w.logsPage},
		{"POST /persistence/save", false, w.persistPost},

		// The API.
		{"POST /api/v1/logout", false, w.apiLogout},
		{"GET /api/v1/status", false, w.apiStatus},
		{"GET /api/v1/logs", false, w.apiLogs},
		{"GET /api/v1/settings", false, w.apiSettings},
		{"PUT /api/v1/settings", false, w.apiSettingsPut},
		{"POST /api/v1/settings/password", false, w.apiPassword},
		{"GET /api/v1/tokens", false, w.apiTokens},
		{"POST /api/v1/tokens", false, w.apiTokenNew},
		{"DELETE /api/v1/tokens/{id}", false, w.apiTokenRevoke},
		{"GET /api/v1/persistence", false, w.Local.persistence},
		{"POST /api/v1/persistence/save", false, w.Local.save},
		{"POST /api/v1/persistence/savedat", false, w.Local.saveDat},
		{"GET /api/v1/disks", false, w.apiDisks},
		{"GET /api/v1/clone", false, w.apiCloneJob},
		{"POST /api/v1/clone", false, w.apiCloneStart},
		{"POST /api/v1/clone/cancel", false, w.apiCloneCancel},
		{"GET /clone", false, w.clonePage},
		{"POST /clone", false, w.clonePost},
		{"POST /clone/cancel", false, w.cloneCancel},
	}, append(w.serviceRoutes(),
		// The mesh: last, so that the fuzz seeds' route numbers for
		// the routes above stay what they were.
		route{"GET /mesh", false, w.meshPage},
		route{"POST /mesh", false, w.meshPost},
		route{"GET " + nodeapi.MeshPath, false, w.apiMesh},
		route{"GET " + nodeapi.MeshSettingsPath, false, w.apiMeshSettings},
		route{"PUT " + nodeapi.MeshSettingsPath, false, w.apiMeshSettingsPut},
		// The web apps: public, for the people on the mesh; a login
		// sees more.
		route{"GET /apps", true, w.appsPage},
		route{"GET " + nodeapi.AppsPath, true, w.apiApps},
	)...)
}

// decode reads a JSON body strictly (unknown fields are errors, so a typo
// is not silently ignored) and answers 400 itself when it fails.
func decode(rw http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		status := http.StatusBadRequest
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			status, err = http.StatusRequestEntityTooLarge, errBodyTooLarge
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			status = http.StatusRequestTimeout
		}
		writeError(rw, &httpError{status, fmt.Errorf("the request body: %w", err)})
		return false
	}
	return true
}

func (w *Web) apiLogin(rw http.ResponseWriter, r *http.Request) {
	var req nodeapi.LoginRequest
	if !decode(rw, r, &req) {
		return
	}
	s, err := w.Auth.Login(remote(r), req.Password)
	if err != nil {
		// Not logged here: the auth store sums failures up (see its Log).
		status := http.StatusUnauthorized
		if errors.Is(err, auth.ErrNotClaimed) {
			status = http.StatusConflict
		}
		w.fail(rw, r, status, err)
		return
	}
	w.Log.Info("API login", "from", remote(r))
	writeJSON(rw, http.StatusOK, nodeapi.LoginResult{Token: s.ID, ExpiresIdleSec: int(auth.SessionTTL.Seconds())})
}

func (w *Web) apiLogout(rw http.ResponseWriter, r *http.Request) {
	if sid := whoOf(r).sessionID(); sid != "" {
		w.Auth.Logout(sid)
	}
	rw.WriteHeader(http.StatusNoContent)
}

func (w *Web) apiStatus(rw http.ResponseWriter, _ *http.Request) {
	st := readStatus(w.Root)
	st.Node, st.Version, st.TLSFingerprint, st.NodeID = w.Settings.Get().NodeName, w.Version, w.Fingerprint, w.NodeID
	st.Modules, st.Services = w.moduleNames(), []nodeapi.ServiceInfo{}
	if w.Services != nil {
		st.Services = w.Services.Services()
	}
	writeJSON(rw, http.StatusOK, st)
}

func (w *Web) apiLogs(rw http.ResponseWriter, r *http.Request) {
	lines := w.Ring.Lines()
	if n, err := strconv.Atoi(r.URL.Query().Get("last")); err == nil && n >= 0 && n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	writeJSON(rw, http.StatusOK, lines)
}

func (w *Web) apiSettings(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, http.StatusOK, w.Settings.Get())
}

func (w *Web) apiSettingsPut(rw http.ResponseWriter, r *http.Request) {
	v := w.Settings.Get()
	if !decode(rw, r, &v) {
		return
	}
	if !w.cat.Has(v.Language) {
		writeError(rw, &httpError{http.StatusBadRequest, fmt.Errorf("language %q: one of %v", v.Language, w.cat.Languages())})
		return
	}
	if err := w.Settings.Set(v); err != nil {
		writeError(rw, &httpError{http.StatusBadRequest, err})
		return
	}
	w.Log.Info("settings changed", "node_name", v.NodeName, "language", v.Language)
	writeJSON(rw, http.StatusOK, v)
}

func (w *Web) apiPassword(rw http.ResponseWriter, r *http.Request) {
	var req nodeapi.PasswordRequest
	if !decode(rw, r, &req) {
		return
	}
	if err := w.Auth.ChangePassword(remote(r), req.Current, req.New, whoOf(r).sessionID()); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, auth.ErrWrongPassword) {
			status = http.StatusForbidden
		}
		w.fail(rw, r, status, err)
		return
	}
	w.Log.Info("the admin password was changed", "from", remote(r))
	rw.WriteHeader(http.StatusNoContent)
}

func (w *Web) apiTokens(rw http.ResponseWriter, _ *http.Request) {
	out := []nodeapi.TokenInfo{}
	for _, t := range w.Auth.Tokens() {
		out = append(out, nodeapi.TokenInfo{ID: t.ID, Name: t.Name, Created: t.Created})
	}
	writeJSON(rw, http.StatusOK, out)
}

func (w *Web) apiTokenNew(rw http.ResponseWriter, r *http.Request) {
	var req nodeapi.NewTokenRequest
	if !decode(rw, r, &req) {
		return
	}
	var (
		secret string
		t      auth.Token
		err    error
	)
	if whoOf(r).local {
		secret, t, err = w.Auth.NewLocalToken(req.Name)
	} else {
		secret, t, err = w.Auth.NewToken(remote(r), req.Password, req.Name)
	}
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, auth.ErrWrongPassword) {
			status = http.StatusForbidden
		}
		w.fail(rw, r, status, err)
		return
	}
	w.Log.Info("API token made", "name", t.Name, "id", t.ID)
	writeJSON(rw, http.StatusCreated, nodeapi.NewTokenResult{ID: t.ID, Name: t.Name, Secret: secret})
}

func (w *Web) apiTokenRevoke(rw http.ResponseWriter, r *http.Request) {
	if err := w.Auth.RevokeToken(r.PathValue("id")); err != nil {
		writeError(rw, &httpError{http.StatusNotFound, err})
		return
	}
	w.Log.Info("API token revoked", "id", r.PathValue("id"))
	rw.WriteHeader(http.StatusNoContent)
}

// moduleNames lists the modules in the running root: those stacked at
// boot, which do not change while it runs, so they are read once.
func (w *Web) moduleNames() []string {
	w.modsOnce.Do(func() {
		w.mods, _ = LoadedModules(w.Root, nil)
		if w.mods == nil {
			w.mods = []string{}
		}
	})
	return w.mods
}

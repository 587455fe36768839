package nodeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/runtime/tlscert"
)

// TestRemoteClient: the token goes as a bearer, a JSON body both ways,
// and an API error keeps its message, status and body.
func TestRemoteClient(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer byz_secret" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(ErrorBody{Error: "log in first"})
			return
		}
		switch r.URL.Path {
		case "/api/v1/modules/olsrd/activate":
			json.NewEncoder(w).Encode(ModuleChange{Activated: []string{"olsrd"}})
		default:
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(ModuleConflict{Error: "tls is needed", RequiredBy: []string{"ngircd"}})
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	fp := tlscert.Fingerprint(srv.Certificate().Raw)
	ctx := context.Background()

	var ch ModuleChange
	body, err := RemoteClient(srv.URL, fp, "byz_secret").Call(ctx, http.MethodPost, "/api/v1/modules/olsrd/activate", nil, &ch)
	if err != nil || len(ch.Activated) != 1 || !strings.Contains(string(body), `"activated":["olsrd"]`) {
		t.Fatalf("Call = %s, %+v, %v", body, ch, err)
	}

	_, err = RemoteClient(srv.URL, fp, "byz_secret").Do(ctx, http.MethodPost, "/api/v1/modules/tls/deactivate", nil)
	var ae *Error
	var conflict ModuleConflict
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || err.Error() != "byzd: tls is needed" ||
		json.Unmarshal(ae.Body, &conflict) != nil || conflict.RequiredBy[0] != "ngircd" {
		t.Errorf("conflict: %v (%+v)", err, ae)
	}

	_, err = RemoteClient(srv.URL, fp, "byz_wrong").Do(ctx, http.MethodGet, "/api/v1/status", nil)
	if err == nil || !strings.Contains(err.Error(), "byzd: log in first (check --token") {
		t.Errorf("wrong token: %v", err)
	}

	wrong := tlscert.Fingerprint([]byte("another certificate"))
	_, err = RemoteClient(srv.URL, wrong, "byz_secret").Do(ctx, http.MethodGet, "/api/v1/status", nil)
	var fe *FingerprintError
	if !errors.As(err, &fe) || fe.Got != fp || fe.Want != wrong {
		t.Errorf("wrong fingerprint: %v", err)
	}
}

// TestLocalClient: over the socket, with no token; a socket nobody
// listens on says what to check.
func TestLocalClient(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "byzd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("a token over the socket")
		}
		json.NewEncoder(w).Encode(Health{Status: "ok"})
	})}
	go srv.Serve(ln)
	defer srv.Close()

	var h Health
	if _, err := LocalClient(sock).Call(context.Background(), http.MethodGet, "/healthz", nil, &h); err != nil || h.Status != "ok" {
		t.Errorf("Call = %+v, %v", h, err)
	}
	none := filepath.Join(t.TempDir(), "none.sock")
	_, err = LocalClient(none).Do(context.Background(), http.MethodGet, "/healthz", nil)
	if err == nil || !strings.Contains(err.Error(), none) || !strings.Contains(err.Error(), "is byzd running?") {
		t.Errorf("no daemon: %v", err)
	}
}

// TestMeshClient: Mesh, MeshSettings and SetMeshSettings use the mesh
// routes with the right methods and bodies, and a refusal keeps byzd's
// message.
func TestMeshClient(t *testing.T) {
	var got MeshSettings
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET " + MeshPath:
			json.NewEncoder(w).Encode(Mesh{Joined: true, Summary: "joined", Neighbours: []MeshNeighbour{{Address: "fe80::1", Cost: 96}}})
		case "GET " + MeshSettingsPath:
			json.NewEncoder(w).Encode(MeshSettings{Protocol: MeshBabel, SSID: "s", Channel: 6, Share: ShareAuto, Keyed: true})
		case "PUT " + MeshSettingsPath:
			json.NewDecoder(r.Body).Decode(&got)
			if got.Channel == 14 {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(ErrorBody{Error: "mesh settings: channel: 14: want 1 to 13"})
				return
			}
			out := got
			out.Key, out.Keyed = "", true
			json.NewEncoder(w).Encode(out)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c := &Client{base: srv.URL, where: srv.URL, hc: srv.Client()}
	ctx := context.Background()
	if m, err := c.Mesh(ctx); err != nil || !m.Joined || m.Neighbours[0].Cost != 96 {
		t.Errorf("Mesh = %+v, %v", m, err)
	}
	if s, err := c.MeshSettings(ctx); err != nil || !s.Keyed || s.SSID != "s" {
		t.Errorf("MeshSettings = %+v, %v", s, err)
	}
	s, err := c.SetMeshSettings(ctx, MeshSettings{Protocol: MeshBoth, SSID: "t", Channel: 11, Share: ShareOff, Key: "a long mesh key"})
	if err != nil || got.Key != "a long mesh key" || got.Protocol != MeshBoth || !s.Keyed || s.Key != "" {
		t.Errorf("SetMeshSettings = %+v, %v (sent %+v)", s, err, got)
	}
	_, err = c.SetMeshSettings(ctx, MeshSettings{Channel: 14})
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "channel: 14") {
		t.Errorf("a refused PUT: %v", err)
	}
}

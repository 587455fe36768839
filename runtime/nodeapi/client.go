package nodeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"

	"byzantium/runtime/tlscert"
)

// Client sends requests to byzd's API, over the local socket or over
// HTTPS. Its errors are written for the person running byz: they say
// what to check, and name byz node's flags where one would help.
type Client struct {
	base  string // "http://byzd" over the socket, "https://HOST:PORT"
	where string // for messages: the socket's path or the URL
	token string
	local bool
	hc    *http.Client
}

// Error is a non-2xx answer: the API's message, and its body for the
// callers that read more than the message (a 409 ModuleConflict).
type Error struct {
	Status int
	Msg    string // "byzd: " and the API's message, or the HTTP status
	Body   []byte
}

func (e *Error) Error() string { return e.Msg }

// FingerprintError is a node presenting another certificate than the
// pinned one.
type FingerprintError struct{ Got, Want string }

func (e *FingerprintError) Error() string {
	return fmt.Sprintf("the node's certificate has the fingerprint\n  %s\nnot the one given with --fingerprint:\n  %s\n"+
		"compare with the fingerprint on the node's console; if they differ, the connection may be intercepted", e.Got, e.Want)
}

// LocalClient returns a client for byzd's root-only unix socket ("" means
// DefaultSocket). It needs no token: byzd checks the peer's uid.
func LocalClient(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "unix", socket)
	}}
	return &Client{base: "http://byzd", where: socket, local: true, hc: &http.Client{Transport: tr}}
}

// RemoteClient returns a client for byzd's HTTPS API at base
// ("https://HOST:PORT", no path) that sends token as its bearer and
// trusts exactly the certificate whose SHA-256 is fingerprint, in
// tlscert.Fingerprint's form.
func RemoteClient(base, fingerprint, token string) *Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The certificate is self-signed and names the node, not
			// the address used: instead of a chain and a host name,
			// VerifyConnection (run on every handshake, resumed or
			// not) accepts exactly the pinned certificate.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the node sent no certificate")
				}
				if got := tlscert.Fingerprint(cs.PeerCertificates[0].Raw); got != fingerprint {
					return &FingerprintError{Got: got, Want: fingerprint}
				}
				return nil
			},
		},
	}
	return &Client{base: base, where: base, token: token, hc: &http.Client{Transport: tr}}
}

// Do sends one request, with in as its JSON body unless nil, and returns
// the answer's body. A non-2xx answer is an *Error carrying the API's
// message.
func (c *Client) Do(ctx context.Context, method, path string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("byzd (%s): %w", c.where, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := resp.Status
		var e ErrorBody
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized && !c.local {
			msg += " (check --token or BYZ_TOKEN: API tokens are made on the panel's Tokens page)"
		}
		return nil, &Error{Status: resp.StatusCode, Msg: "byzd: " + msg, Body: b}
	}
	return b, nil
}

// Call is Do with the answer decoded into out; it returns the raw body
// too (byz prints it as is with --json).
func (c *Client) Call(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	b, err := c.Do(ctx, method, path, in)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("byzd (%s): %s %s: %w", c.where, method, path, err)
	}
	return b, nil
}

// transportError says why byzd could not be reached, without the URL
// net/http repeats, and with a hint for the usual causes.
func (c *Client) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var fe *FingerprintError
	if errors.As(err, &fe) {
		return fmt.Errorf("byzd (%s): %w", c.where, fe)
	}
	hint := ""
	if c.local {
		switch {
		case errors.Is(err, os.ErrPermission):
			hint = " (the socket is root's only: run as root, or use --url)"
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED):
			hint = " (is byzd running? for another node, use --url)"
		case os.Geteuid() != 0:
			hint = " (byzd answers root only: run as root, or use --url)"
		}
	}
	return fmt.Errorf("byzd (%s): %w%s", c.where, err, hint)
}

// Mesh returns the mesh as the node sees it (GET MeshPath).
func (c *Client) Mesh(ctx context.Context) (Mesh, error) {
	var m Mesh
	_, err := c.Call(ctx, http.MethodGet, MeshPath, nil, &m)
	return m, err
}

// MeshSettings returns the mesh's settings, the key blanked and Keyed
// set (GET MeshSettingsPath).
func (c *Client) MeshSettings(ctx context.Context) (MeshSettings, error) {
	var s MeshSettings
	_, err := c.Call(ctx, http.MethodGet, MeshSettingsPath, nil, &s)
	return s, err
}

// SetMeshSettings sends the whole of s (PUT MeshSettingsPath): byzd
// checks, saves and applies it, and returns the settings as GET would.
// Key "" with KeepKey keeps the node's key; without, the mesh is open.
func (c *Client) SetMeshSettings(ctx context.Context, s MeshSettings) (MeshSettings, error) {
	var out MeshSettings
	_, err := c.Call(ctx, http.MethodPut, MeshSettingsPath, s, &out)
	return out, err
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"byzantium/runtime/daemon"
	"byzantium/runtime/tlscert"
)

// nodeConn says how to reach byzd: the node command's persistent flags.
// The zero value is the local socket.
type nodeConn struct {
	URL         string // https://HOST[:PORT]; "" means Socket
	Socket      string // "" means daemon.DefaultSocket
	Token       string // "" means $BYZ_TOKEN; sent over HTTPS only
	Fingerprint string // the certificate's SHA-256, as byzd prints it
}

// fingerprintHelp says where the fingerprint is found: the first
// connection to a node can only be trusted by comparing it.
const fingerprintHelp = `The fingerprint is on the node's console (and serial port): byzd prints it
at each start as
  byzd: TLS certificate sha256 fingerprint 4D:43:…
On the node, 'byz node logs | grep fingerprint' finds it too while byzd's
log still holds that line. A browser shows the same value for the panel's
certificate: compare it with the console's once.`

// nodeClient sends requests to byzd's API.
type nodeClient struct {
	base  string // "http://byzd" over the socket, "https://HOST:PORT"
	where string // for messages: the socket's path or the URL
	token string
	local bool
	hc    *http.Client
}

// apiError is a non-2xx answer: the API's message, and its body for the
// callers that read more than the message (a 409 ModuleConflict).
type apiError struct {
	status int
	msg    string
	body   []byte
}

func (e *apiError) Error() string { return e.msg }

// fingerprintError is a node presenting another certificate than the one
// pinned with --fingerprint.
type fingerprintError struct{ got, want string }

func (e *fingerprintError) Error() string {
	return fmt.Sprintf("the node's certificate has the fingerprint\n  %s\nnot the one given with --fingerprint:\n  %s\n"+
		"compare with the fingerprint on the node's console; if they differ, the connection may be intercepted", e.got, e.want)
}

// client checks c and returns a client for it. Mistakes in the flags
// are usage errors.
func (c nodeConn) client() (*nodeClient, error) {
	if c.URL == "" {
		sock := c.Socket
		if sock == "" {
			sock = daemon.DefaultSocket
		}
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "unix", sock)
		}}
		return &nodeClient{base: "http://byzd", where: sock, local: true, hc: &http.Client{Transport: tr}}, nil
	}
	base, err := parseNodeURL(c.URL)
	if err != nil {
		return nil, usageError{err}
	}
	if c.Fingerprint == "" {
		return nil, usageError{fmt.Errorf("--url needs --fingerprint, the node's certificate fingerprint: its certificate is self-signed, so the fingerprint is the only proof that %s is your node.\n%s", base, fingerprintHelp)}
	}
	want, err := normalizeFingerprint(c.Fingerprint)
	if err != nil {
		return nil, usageError{err}
	}
	token := c.Token
	if token == "" {
		token = os.Getenv("BYZ_TOKEN")
	}
	if token == "" {
		return nil, usageError{errors.New("--url needs an API token: --token TOKEN or BYZ_TOKEN in the environment (make one on the panel's Tokens page)")}
	}
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
				if got := tlscert.Fingerprint(cs.PeerCertificates[0].Raw); got != want {
					return &fingerprintError{got: got, want: want}
				}
				return nil
			},
		},
	}
	return &nodeClient{base: base, where: base, token: token, hc: &http.Client{Transport: tr}}, nil
}

// parseNodeURL accepts https://HOST[:PORT] or HOST[:PORT] and returns
// the URL without a path.
func parseNodeURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("--url: %w", err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("--url %s: byzd's API is served over HTTPS only (https://HOST[:PORT])", s)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("--url %s: want https://HOST[:PORT]", s)
	}
	return "https://" + u.Host, nil
}

// normalizeFingerprint accepts a SHA-256 fingerprint with or without
// colons, spaces or a "SHA256:" prefix, in either case, and returns it in
// tlscert.Fingerprint's form.
func normalizeFingerprint(s string) (string, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimPrefix(strings.TrimPrefix(t, "SHA256:"), "SHA-256:")
	t = strings.NewReplacer(":", "", " ", "", "-", "").Replace(t)
	b, err := hex.DecodeString(t)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("--fingerprint %q: want the 32 bytes of a SHA-256 in hex, as byzd prints it (4D:43:…)", s)
	}
	var out strings.Builder
	for i, c := range b {
		if i > 0 {
			out.WriteByte(':')
		}
		fmt.Fprintf(&out, "%02X", c)
	}
	return out.String(), nil
}

// call sends one request, with in as its JSON body unless nil, and
// returns the answer's body. A non-2xx answer is an *apiError carrying
// the API's message.
func (c *nodeClient) call(ctx context.Context, method, path string, in any) ([]byte, error) {
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
		var e daemon.ErrorBody
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized && !c.local {
			msg += " (check --token or BYZ_TOKEN: API tokens are made on the panel's Tokens page)"
		}
		return nil, &apiError{status: resp.StatusCode, msg: "byzd: " + msg, body: b}
	}
	return b, nil
}

// transportError says why byzd could not be reached, without the URL
// net/http repeats, and with a hint for the usual causes.
func (c *nodeClient) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var fe *fingerprintError
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

// callJSON calls and decodes the answer into out, returning the raw body
// too (printed as is with --json).
func (c *nodeClient) callJSON(ctx context.Context, method, path string, out any) ([]byte, error) {
	return c.send(ctx, method, path, nil, out)
}

// send is callJSON with a JSON request body.
func (c *nodeClient) send(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	b, err := c.call(ctx, method, path, in)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("byzd (%s): %s %s: %w", c.where, method, path, err)
	}
	return b, nil
}

// writeIndented prints a JSON body indented, ending with a newline.
func writeIndented(w io.Writer, body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(body), "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

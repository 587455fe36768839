package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"byzantium/runtime/nodeapi"
)

// nodeConn says how to reach byzd: the node command's persistent flags.
// The zero value is the local socket.
type nodeConn struct {
	URL         string // https://HOST[:PORT]; "" means Socket
	Socket      string // "" means nodeapi.DefaultSocket
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

// client checks c and returns a client for it. Mistakes in the flags
// are usage errors.
func (c nodeConn) client() (*nodeapi.Client, error) {
	if c.URL == "" {
		return nodeapi.LocalClient(c.Socket), nil
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
	return nodeapi.RemoteClient(base, want, token), nil
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

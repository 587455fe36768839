// Package tlscert keeps a node's self-signed TLS certificate: made once at
// first boot, stored in the state directory and reused, so the SHA-256
// fingerprint a user checked on the console stays the same across reboots.
//
// The certificate is a leaf, not a certificate authority: basic
// constraints say CA:FALSE and the key may not sign certificates. A client
// that pins it (curl --cacert, Go's RootCAs, a browser's exception) trusts
// exactly this certificate, and whoever steals the node's key can
// impersonate this node but cannot mint a certificate for any other site.
// A CA with name constraints was the alternative; it was not chosen
// because constraints are only as good as every client's enforcement of
// them, IP addresses (which DHCP changes) cannot be constrained usefully,
// and a leaf needs none of that: adding a name later is a new leaf under
// the same key.
package tlscert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside Options.Dir.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// Validity is fixed rather than taken from the clock: a node may first boot
// with no RTC and no NTP (1970 or any date), and a certificate made then
// must still verify once the clock is right. 99991231235959Z is RFC 5280's
// "no well-defined expiration date".
var (
	notBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// Options says where the certificate lives and what it names.
type Options struct {
	// Dir holds cert.pem and key.pem; it is created (0700) if missing.
	// Required.
	Dir string
	// Names are DNS subject alternative names. The first is the common
	// name and must be covered by a stored certificate for it to be
	// reused (a renamed node gets a new certificate).
	Names []string
	// IPs are IP subject alternative names, used only when a certificate
	// is made: the fingerprint matters more than addresses that DHCP may
	// change.
	IPs []net.IP
	// Logger receives a line when a certificate is made or replaced; nil
	// discards.
	Logger *slog.Logger
}

// Cert is a loaded or new certificate.
type Cert struct {
	TLS         tls.Certificate
	Leaf        *x509.Certificate
	Fingerprint string // SHA-256 of the DER, upper-case hex pairs joined by ':'
	Created     bool   // made by this call rather than read from Dir
}

// LoadOrCreate returns the certificate stored in opts.Dir, or makes, stores
// and returns a new one when there is none.
//
// A stored certificate that lacks one of Names is issued again under the
// same key (safe for a leaf: the key signs nothing but TLS handshakes), so
// a renamed node, or a release that adds names, keeps its public key; the
// certificate's fingerprint changes and is printed again.
//
// A stored certificate that is a CA (as nodes made before this package
// made leaves) is replaced by a leaf with a new key, and the old key is
// overwritten rather than kept: a user who imported the old certificate as
// an authority still trusts whatever that key signs, so the key must not
// survive. The fingerprint changes, and a warning says so.
//
// A stored pair that cannot be used (unparsable key or certificate, a key
// that does not match) is moved aside to *.bad and replaced, with a
// warning: refusing to start would leave a headless node unreachable, and
// the new fingerprint is printed on the console where the user checks it
// anyway.
func LoadOrCreate(opts Options) (*Cert, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		return nil, errors.New("tlscert: no directory given")
	}
	certPath, keyPath := filepath.Join(opts.Dir, CertFile), filepath.Join(opts.Dir, KeyFile)
	c, err := load(certPath, keyPath)
	var key crypto.Signer
	switch {
	case err == errNone:
		// First boot: nothing to keep.
	case err != nil:
		log.Warn("TLS certificate unusable, making a new one (its fingerprint changes)", "dir", opts.Dir, "err", err)
		for _, p := range []string{certPath, keyPath} {
			if err := os.Rename(p, p+".bad"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("tlscert: moving aside %s: %w", p, err)
			}
		}
	case !isLeaf(c.Leaf):
		log.Warn("TLS certificate was a certificate authority: replaced by a leaf with a new key, the old key is overwritten "+
			"(the fingerprint changes; remove the old certificate wherever it was trusted as an authority)",
			"dir", opts.Dir, "old_fingerprint", c.Fingerprint)
	case missingName(c.Leaf, opts.Names) != "":
		log.Info("TLS certificate issued again for new names, under the same key (the fingerprint changes)",
			"dir", opts.Dir, "missing", missingName(c.Leaf, opts.Names), "old_fingerprint", c.Fingerprint)
		key, _ = c.TLS.PrivateKey.(crypto.Signer)
	default:
		return c, nil
	}
	c, err = create(opts, key)
	if err != nil {
		return nil, err
	}
	if err := store(opts.Dir, c); err != nil {
		return nil, err
	}
	log.Info("made a new TLS certificate", "dir", opts.Dir)
	return c, nil
}

// isLeaf reports whether c can sign nothing but handshakes: basic
// constraints present (a certificate without them is a CA to some
// clients) and saying CA:FALSE, and no certificate-signing key usage.
func isLeaf(c *x509.Certificate) bool {
	return c.BasicConstraintsValid && !c.IsCA && c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) == 0
}

// missingName returns the first of names that c does not cover, or "".
func missingName(c *x509.Certificate, names []string) string {
	for _, n := range names {
		if c.VerifyHostname(n) != nil {
			return n
		}
	}
	return ""
}

// errNone means neither file exists. It is distinct from fs.ErrNotExist,
// which load also wraps when only one file is missing: that is damage.
var errNone = errors.New("tlscert: no certificate stored")

// load reads the pair.
func load(certPath, keyPath string) (*Cert, error) {
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	if errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist) {
		return nil, errNone
	}
	if cerr != nil {
		return nil, fmt.Errorf("reading %s: %w", certPath, cerr)
	}
	if kerr != nil {
		return nil, fmt.Errorf("reading %s: %w", keyPath, kerr)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certPath, keyPath, err)
	}
	return &Cert{TLS: pair, Leaf: pair.Leaf, Fingerprint: Fingerprint(pair.Leaf.Raw)}, nil
}

// create makes a self-signed leaf for opts under key, or under a new
// P-256 key when key is nil.
func create(opts Options, key crypto.Signer) (*Cert, error) {
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("tlscert: generating key: %w", err)
		}
		key = k
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("tlscert: serial number: %w", err)
	}
	cn := "byzantium"
	if len(opts.Names) > 0 {
		cn = opts.Names[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Byzantium node"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// CA:FALSE, written out: clients still accept this very
		// certificate as their only trust anchor (curl --cacert, Go's
		// RootCAs pin it), but nothing it signs is trusted. New names go
		// in DNSNames; LoadOrCreate reissues under the same key.
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              opts.Names,
		IPAddresses:           opts.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("tlscert: creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlscert: parsing new certificate: %w", err)
	}
	return &Cert{
		TLS:         tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Leaf:        leaf,
		Fingerprint: Fingerprint(der),
		Created:     true,
	}, nil
}

// store writes the key before the certificate: a crash in between leaves a
// key that does not match the old certificate, which load detects.
func store(dir string, c *Cert) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tlscert: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.TLS.PrivateKey)
	if err != nil {
		return fmt.Errorf("tlscert: encoding key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeAtomic(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Leaf.Raw})
	return writeAtomic(filepath.Join(dir, CertFile), certPEM, 0o644)
}

// writeAtomic writes data to a temporary file in the same directory, syncs
// it and renames it over path, so a power cut leaves the old file or the
// new one, never half of one. The temporary file is created with mode, so
// a key is never readable by others, not even briefly.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	// A stale temporary file would keep its old mode through O_TRUNC.
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("tlscert: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tlscert: writing %s: %w", path, err)
	}
	return nil
}

// Fingerprint formats the SHA-256 of a DER certificate the way browsers
// show it: AA:BB:….
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

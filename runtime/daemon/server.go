package daemon

import (
	"byzantium/runtime/nodeapi"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"strings"
)

// securityHeaders sets headers for a panel that is only ever served by
// itself over HTTPS: HSTS (two years) so a browser that has seen the node
// does not try HTTP again, no framing, no sniffing, no referrers to other
// sites, forms that post only to the panel.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Strict-Transport-Security", "max-age=63072000")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: under no-referrer browsers send
		// "Origin: null" with the panel's own forms, which sameOrigin
		// must then refuse. Other sites still get no Referer.
		hd.Set("Referrer-Policy", "same-origin")
		// Forms post only here, and no <base> may move relative links.
		hd.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.ServeHTTP(w, r)
	})
}

func (web *Web) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(nodeapi.Health{Status: "ok", Mesh: web.meshWord()})
}

// RedirectHandler answers plain-HTTP GET and HEAD with a permanent
// redirect (301) to the same host and path over HTTPS on httpsPort ("443"
// is left out of the URL). Every other method is refused (405): a client
// set up with http:// would otherwise follow a 308 and keep working while
// it sends passwords and tokens in clear on the way; refused, it fails at
// once and says to use https://. Its body is not read.
func RedirectHandler(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" {
			// HTTP/1.0 without Host: name the address the client reached.
			if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				host, _, _ = net.SplitHostPort(a.String())
			}
		}
		target := host
		if httpsPort != "443" {
			target = net.JoinHostPort(host, httpsPort)
		} else if strings.Contains(host, ":") {
			target = "[" + host + "]"
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.Header().Set("Connection", "close")
			http.Error(w, "byzd does not accept "+r.Method+" over plain HTTP: use https://"+target+"/ (what this request carried was sent unencrypted; change a password or token it held)", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Location", "https://"+target+r.URL.RequestURI())
		w.WriteHeader(http.StatusMovedPermanently)
	})
}

// TLSConfig serves cert with TLS 1.2 as the floor: 1.0 and 1.1 are broken
// and every browser that can show the panel speaks 1.2. In 1.2 only
// forward-secret AEAD suites are offered: the CBC suites (Lucky13-style
// padding oracles, SHA-1 MACs) and static RSA key exchange are left out.
// TLS 1.3's suites are all AEAD and not configurable.
func TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		CipherSuites: tls12Suites,
	}
}

// tls12Suites are the TLS 1.2 suites byzd accepts: ECDHE with AES-GCM or
// ChaCha20-Poly1305, for the node's ECDSA or RSA key.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

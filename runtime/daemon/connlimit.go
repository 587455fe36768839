package daemon

import (
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Limits bound what a client on the mesh can hold of byzd's HTTPS and
// HTTP listeners. The zero value takes the defaults; tests make them
// small.
type Limits struct {
	// Conns caps the open connections of both listeners together;
	// ConnsPerNetwork caps those from one source network (an IPv4
	// address, an IPv6 /64, since one host has a whole /64 to pick
	// addresses from). A connection over a cap is closed at once.
	// 0 means 256 and 32.
	Conns, ConnsPerNetwork int
	// HeaderTimeout bounds the TLS handshake and the request's headers;
	// RequestTimeout the whole request, body included (bodies are at
	// most 64 KiB); IdleTimeout a kept-alive connection between
	// requests; WriteTimeout an answer, a backstop for clients that do
	// not read (long enough for the slowest handler, a save.dat written
	// in full). 0 means 10 s, 30 s, 2 min and 10 min.
	HeaderTimeout, RequestTimeout, IdleTimeout, WriteTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Conns, 256)
	def(&l.ConnsPerNetwork, 32)
	defd(&l.HeaderTimeout, 10*time.Second)
	defd(&l.RequestTimeout, 30*time.Second)
	defd(&l.IdleTimeout, 2*time.Minute)
	defd(&l.WriteTimeout, 10*time.Minute)
	return l
}

// server returns an http.Server with the limits' deadlines, speaking
// HTTP/1.1 only: HTTP/2 would let one connection carry hundreds of
// concurrent requests, each with its own buffers, past the connection
// caps; the panel is small and gains nothing from it.
func (l Limits) server(h http.Handler, errLog *log.Logger) *http.Server {
	s := &http.Server{Handler: h, ReadHeaderTimeout: l.HeaderTimeout, ReadTimeout: l.RequestTimeout,
		IdleTimeout: l.IdleTimeout, WriteTimeout: l.WriteTimeout, MaxHeaderBytes: 16 << 10, ErrorLog: errLog}
	s.Protocols = new(http.Protocols)
	s.Protocols.SetHTTP1(true)
	return s
}

// connTable counts the open connections of the listeners it wraps.
type connTable struct {
	max, perNet int
	log         *slog.Logger

	mu       sync.Mutex
	open     int
	byNet    map[netip.Prefix]int
	refused  int       // since the last log line
	loggedAt time.Time // refusals are logged at most once a minute
}

func newConnTable(l Limits, logger *slog.Logger) *connTable {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &connTable{max: l.Conns, perNet: l.ConnsPerNetwork, log: logger, byNet: map[netip.Prefix]int{}}
}

// sourceNet is the network a connection is counted under: an IPv4
// address alone, an IPv6 address's /64.
func sourceNet(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// admit counts a new connection from a, or says it is over a cap.
func (t *connTable) admit(a net.Addr) (netip.Prefix, bool) {
	key := sourceNet(a)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open >= t.max || t.byNet[key] >= t.perNet {
		t.refused++
		if now := time.Now(); now.Sub(t.loggedAt) >= time.Minute {
			t.log.Warn("connections refused: over the cap", "refused", t.refused, "last_from", key.String(),
				"open", t.open, "cap", t.max, "cap_per_network", t.perNet)
			t.loggedAt, t.refused = now, 0
		}
		return key, false
	}
	t.open++
	t.byNet[key]++
	return key, true
}

func (t *connTable) release(key netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open--
	if t.byNet[key]--; t.byNet[key] <= 0 {
		delete(t.byNet, key)
	}
}

// listen wraps ln: connections over a cap are closed as soon as they are
// accepted, before a byte is read.
func (t *connTable) listen(ln net.Listener) net.Listener { return &limitListener{Listener: ln, t: t} }

type limitListener struct {
	net.Listener
	t *connTable
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, ok := l.t.admit(c.RemoteAddr())
		if !ok {
			c.Close()
			continue
		}
		return &countedConn{Conn: c, release: sync.OnceFunc(func() { l.t.release(key) })}, nil
	}
}

// countedConn gives its place back when it is closed, once.
type countedConn struct {
	net.Conn
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"byzantium/overlays"
	"byzantium/runtime/auth"
	"byzantium/runtime/changes"
	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/netcfg"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/service"
	"byzantium/runtime/tlscert"

	"golang.org/x/sys/unix"
)

// Config is usable as its zero value on a node: state in
// /var/lib/byzantium, HTTPS on :443, HTTP on :80, networking left alone.
type Config struct {
	// StateDir keeps what must survive reboots when persistence is on;
	// the certificate lives in StateDir/tls. "" means /var/lib/byzantium.
	StateDir string
	// RootDir prefixes paths read from the running root (module
	// manifests); "" means "/".
	RootDir string
	// NodeName names the node in the certificate and the panel; "" means
	// "byzantium".
	NodeName string
	// HTTPSAddr and HTTPAddr are listen addresses; "" means ":443" and
	// ":80".
	HTTPSAddr, HTTPAddr string
	// Version is reported by the status (panel and API); "" means "dev".
	Version string
	// Network, when set, is how networking is brought up (its Hostname
	// defaults to NodeName, its Logger to Logger). nil leaves networking
	// alone: for tests, and hosts that configure their own.
	Network *netcfg.Config
	// Logger receives the console log; nil discards.
	Logger *slog.Logger
	// Ready, if set, is called with the bound addresses once both
	// listeners are open (":0" ports in tests).
	Ready func(https, http net.Addr)
	// ShutdownTimeout bounds the graceful shutdown; 0 means 5s.
	ShutdownTimeout time.Duration
	// Services, when set, runs the module and service manager (on a
	// node; tests of the daemon alone leave it off). SandboxSelf is the
	// binary that confines services (byzd: /proc/self/exe).
	Services    bool
	SandboxSelf string
	// Byz is the byz binary that clones; "" means /usr/bin/byz.
	Byz string
	// HashParams, when set, is the cost of new password hashes (tests);
	// zero means auth.DefaultHash.
	HashParams auth.HashParams
	// Socket is the root-only unix socket of the local API (byz on the
	// node talks to it); "" means nodeapi.DefaultSocket, "-" none.
	Socket string
	// Limits caps connections and puts deadlines on requests (zero:
	// the defaults, see Limits).
	Limits Limits
	// Coldplug, when set, runs once both listeners serve, beside them:
	// on a node it loads the drivers for the devices byz-init left alone
	// (it loaded only the network's). nil: tests and hosts with udev.
	Coldplug func(log *slog.Logger)
	// Mesh, when set, is the mesh manager: Run applies the mesh
	// settings to it once at the start (the image's, meshcfg.ImageFile
	// under RootDir, or those saved in StateDir) and again whenever the
	// panel or the API changes them. nil: no mesh (tests, hosts).
	Mesh Mesh
}

// nodeNamePattern is a DNS label: the name goes into the certificate and
// into NAME.local.
var nodeNamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func (c Config) withDefaults() (Config, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.StateDir, "/var/lib/byzantium")
	def(&c.RootDir, "/")
	def(&c.NodeName, "byzantium")
	def(&c.HTTPSAddr, ":443")
	def(&c.HTTPAddr, ":80")
	def(&c.Version, "dev")
	def(&c.Socket, nodeapi.DefaultSocket)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if !nodeNamePattern.MatchString(c.NodeName) {
		return c, fmt.Errorf("daemon: node name %q: use letters, digits and inner hyphens, at most 63", c.NodeName)
	}
	return c, nil
}

// Run starts the daemon and serves until ctx is done (SIGTERM in byzd),
// then shuts down gracefully. Networking and the module list are best
// effort (logged); the certificate and the listeners are essential, and
// their failure is returned.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	ring := NewLogRing(500)
	log := ring.Tee(cfg.Logger)

	settings := OpenSettings(cfg.StateDir, nodeapi.SettingsValues{NodeName: cfg.NodeName, Language: "en"}, log)
	// A name chosen in the panel outlives the image's host name.
	cfg.NodeName = settings.Get().NodeName
	image, err := meshcfg.ReadImage(cfg.RootDir)
	if err != nil {
		log.Error("the image's mesh settings are not usable: the defaults apply", "err", err)
	}
	meshSettings := OpenMeshSettings(cfg.StateDir, image.Settings, log)
	if cfg.Mesh != nil {
		if err := cfg.Mesh.Apply(meshSettings.Get()); err != nil {
			log.Error("mesh", "err", err)
		}
	}
	authStore, err := openAuth(cfg, log)
	if err != nil {
		return err
	}

	var network *netcfg.Network
	if cfg.Network != nil {
		nc := *cfg.Network
		if nc.Hostname == "" {
			nc.Hostname = cfg.NodeName
		}
		if nc.Logger == nil {
			nc.Logger = log
		}
		if network, err = netcfg.Start(ctx, nc); err != nil {
			log.Error("networking", "err", err)
		}
	}

	mods, err := LoadedModules(cfg.RootDir, log)
	if err != nil {
		log.Error("listing modules", "err", err)
	}

	cert, err := tlscert.LoadOrCreate(tlscert.Options{
		Dir: filepath.Join(cfg.StateDir, "tls"),
		// The apps' names (nodeapi.AppHost) are under the node's own name
		// in the apps' domain: one wildcard covers every app.
		Names: []string{cfg.NodeName, cfg.NodeName + ".local", "localhost",
			strings.ToLower(cfg.NodeName) + "." + nodeapi.AppDomain, "*." + strings.ToLower(cfg.NodeName) + "." + nodeapi.AppDomain},
		IPs:    hostIPs(),
		Logger: log,
	})
	if err != nil {
		return err
	}
	// The exact form of this line is what users compare with their
	// browser, and what the QEMU tests wait for.
	log.Info("TLS certificate sha256 fingerprint " + cert.Fingerprint)

	httpsLn, err := net.Listen("tcp", cfg.HTTPSAddr)
	if err != nil {
		return fmt.Errorf("daemon: HTTPS: %w", err)
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		httpsLn.Close()
		return fmt.Errorf("daemon: HTTP: %w", err)
	}
	_, httpsPort, _ := net.SplitHostPort(httpsLn.Addr().String())

	nodeID, err := loadNodeID(cfg.StateDir)
	if err != nil {
		return err
	}
	log.Info("node id " + nodeID)
	localAPI := &Local{Root: cfg.RootDir, Log: log}
	web := &Web{Auth: authStore, Log: log, Ring: ring, Root: cfg.RootDir, Version: cfg.Version, Settings: settings, Local: localAPI, Fingerprint: cert.Fingerprint, NodeID: nodeID,
		Cloner: &Cloner{Byz: cfg.Byz, Log: log}, Mesh: cfg.Mesh, MeshSettings: meshSettings}
	if cfg.Services {
		self := cfg.SandboxSelf
		if self == "" {
			self = "/proc/self/exe"
		}
		mgr := &service.Manager{Root: cfg.RootDir, StateDir: cfg.StateDir, Self: self, Log: log,
			Node: func() string { return settings.Get().NodeName }, Lang: func() string { return settings.Get().Language }}
		// Services stop with the daemon: Run waits for them below.
		if err := mgr.Start(ctx); err != nil {
			log.Error("module and service manager", "err", err)
		} else {
			web.Services = mgr
			defer mgr.Wait()
		}
	}
	handler, err := web.Handler()
	if err != nil {
		return err
	}
	if web.Services != nil {
		// byzd is the front of the node's web apps; the panel serves
		// what no app's host name claims.
		web.apps = newApps(web.Services, handler, func() string { return settings.Get().NodeName }, log)
		handler = web.apps.front
		go web.apps.watch(ctx)
	}
	localHandler, err := web.LocalHandler()
	if err != nil {
		return err
	}
	if p := ReadPersistence(cfg.RootDir); p != nil && p.Warning != "" {
		log.Warn("persistence is OFF: " + p.Warning)
	}
	// Handshake failures from scanners and browsers rejecting the
	// self-signed certificate would flood the console; keep them at debug.
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	// Both listeners share one table of connections: the caps hold for
	// the node, not for each port.
	limits := cfg.Limits.withDefaults()
	conns := newConnTable(limits, log)
	https := limits.server(handler, errLog)
	https.TLSConfig = TLSConfig(cert.TLS)
	plain := limits.server(RedirectHandler(httpsPort), errLog)

	errc := make(chan error, 3)
	go func() { errc <- https.ServeTLS(conns.listen(httpsLn), "", "") }()
	go func() { errc <- plain.Serve(conns.listen(httpLn)) }()
	local := &http.Server{Handler: localHandler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	if cfg.Socket != "-" {
		// The node serves without it; only byz on the node needs it.
		if ln, err := ListenLocal(cfg.Socket); err != nil {
			log.Error("local API", "err", err)
		} else {
			go func() { errc <- local.Serve(ln) }()
			defer os.Remove(cfg.Socket)
		}
	}
	log.Info("serving", "https", httpsLn.Addr(), "http", httpLn.Addr(), "node", cfg.NodeName, "modules", len(mods))
	if cfg.Ready != nil {
		cfg.Ready(httpsLn.Addr(), httpLn.Addr())
	}
	if cfg.Coldplug != nil {
		go cfg.Coldplug(log)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-errc:
		serveErr = fmt.Errorf("daemon: serving: %w", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	err = errors.Join(serveErr, https.Shutdown(sctx), plain.Shutdown(sctx), local.Shutdown(sctx))
	if network != nil {
		// The DHCP goroutines end with ctx; a serving error does not
		// cancel it, so only wait when ctx is done.
		if ctx.Err() != nil {
			network.Wait()
		}
	}
	return err
}

// hostIPs lists the addresses to name in a new certificate: loopback and
// whatever the interfaces have now. DHCP may not have answered yet at
// first boot; the certificate is kept anyway, since a stable fingerprint
// matters more to the user than an IP SAN.
func hostIPs() []net.IP {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ips
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	return ips
}

// Hostname returns the kernel's host name if it can name a node, else "".
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "localhost" || !nodeNamePattern.MatchString(h) {
		return ""
	}
	return h
}

// ReadPersistence reads byz-init's persistence report under root and the
// store's size and free space; nil when there is no report (a host, or
// an init that is not byz-init).
func ReadPersistence(root string) *nodeapi.Persistence {
	r, err := overlays.ReadPersistence(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &nodeapi.Persistence{Persistence: overlays.Persistence{Mode: overlays.ModeUnknown, Warning: "unreadable " + err.Error()}}
	}
	p := nodeapi.Persistence{Persistence: *r}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(root, overlays.RWDir), &st); err == nil {
		p.SizeBytes = st.Blocks * uint64(st.Bsize)
		p.FreeBytes = st.Bavail * uint64(st.Bsize)
	}
	if p.Mode == overlays.ModeExit {
		// The RAM holds the changes; the store must hold them at the
		// next save.
		if err := unix.Statfs(filepath.Join(root, overlays.StoreDir), &st); err == nil {
			p.StoreSizeBytes = st.Blocks * uint64(st.Bsize)
			p.StoreFreeBytes = st.Bavail * uint64(st.Bsize)
		}
		p.LastSave = changes.ReadSaveReport(filepath.Join(root, overlays.LastSaveJSON))
	}
	return &p
}

// openAuth opens the admin password, sessions and tokens in the state
// folder, applies a credential from the VM host or the image if the node
// has no password of its own, and otherwise prints the setup code: the
// console is the one place only someone at the node can read.
func openAuth(cfg Config, log *slog.Logger) (*auth.Store, error) {
	st, err := auth.Open(filepath.Join(cfg.StateDir, "auth"))
	if err != nil {
		return nil, err
	}
	// The store logs failed logins itself, summed up: a flood of them
	// must not become a flood of console lines.
	st.Log = log
	if cfg.HashParams != (auth.HashParams{}) {
		st.SetHashParams(cfg.HashParams)
	}
	creds := auth.ReadCredentials(cfg.RootDir)
	hash, from := "", ""
	if c, ok := creds[auth.CredPasswordHash]; ok {
		hash, from = string(c.Value), c.Source
	} else if c, ok := creds[auth.CredPassword]; ok {
		p := auth.DefaultHash
		if cfg.HashParams != (auth.HashParams{}) {
			p = cfg.HashParams
		}
		hash, from = auth.HashPassword(string(c.Value), p), c.Source
		clear(c.Value)
	}
	if hash != "" {
		ok, err := st.Provision(hash)
		switch {
		case err != nil:
			log.Error("the admin password credential is not usable", "source", from, "err", err)
		case ok:
			log.Info("admin password provisioned from a credential", "source", from)
		default:
			log.Info("an admin password credential was ignored: the node has its own password", "source", from)
		}
	}
	if code := st.SetupCode(); code != "" {
		// The exact form is what users (and tests) look for.
		log.Info("this node has no admin password: open the panel and claim it with setup code " + code)
	}
	return st, nil
}

// loadNodeID returns the node's identity from dir/node-id, making it at
// the first start: 16 random hex digits. It is one of the secrets a clone
// leaves behind, so every clone makes its own.
func loadNodeID(dir string) (string, error) {
	path := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
			return id, nil
		}
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("daemon: %w", err)
	}
	if err := os.WriteFile(path+".tmp", []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("daemon: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return "", fmt.Errorf("daemon: %w", err)
	}
	return id, nil
}

// Command byzd is the node's control daemon, started by the base's init
// after switch_root. Build it static:
//
//	CGO_ENABLED=0 go build ./cmd/byzd
//
// Its wiring, HTTP handlers and pages are in runtime/daemon, which hands
// the work to the packages that own it (runtime/service, runtime/changes,
// runtime/savedat, blockdev; clones run as a `byz clone` child).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"byzantium/runtime/coldplug"
	"byzantium/runtime/daemon"
	"byzantium/runtime/netcfg"
	"byzantium/runtime/sandbox"
)

// version is set at link time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	// byzd runs itself again to confine each service (runtime/sandbox).
	if len(os.Args) > 1 && os.Args[1] == sandbox.Arg {
		sandbox.Main()
	}
	var cfg daemon.Config
	showVersion := flag.Bool("version", false, "print byzd's version and exit")
	flag.StringVar(&cfg.StateDir, "state", "/var/lib/byzantium", "directory for state kept across reboots (TLS certificate)")
	flag.StringVar(&cfg.HTTPSAddr, "https", ":443", "HTTPS listen address")
	flag.StringVar(&cfg.HTTPAddr, "http", ":80", "HTTP listen address (redirects to HTTPS)")
	flag.StringVar(&cfg.NodeName, "node-name", daemon.Hostname(), "node name for the certificate and the panel (default: the host name, else byzantium)")
	flag.StringVar(&cfg.RootDir, "root", "/", "root of the running system, where module manifests are read")
	noNet := flag.Bool("no-net", false, "leave networking alone (no loopback, no DHCP)")
	noServices := flag.Bool("no-services", false, "run no modules or services (the panel then only reports)")
	noMesh := flag.Bool("no-mesh", false, "run no mesh (no babeld, no addresses, no uplink sharing)")
	noColdplug := flag.Bool("no-coldplug", false, "load no drivers for the machine's devices (byz-init loads the network's; byzd the rest once it serves)")
	debug := flag.Bool("debug", false, "log debug lines too")
	flag.Usage = func() { usage(flag.CommandLine.Output()) }
	for _, a := range os.Args[1:] {
		if a == "-h" || a == "-help" || a == "--help" {
			usage(os.Stdout) // asked for: on stdout, status 0
			os.Exit(0)
		}
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "byzd: unexpected arguments %q (see byzd --help)\n", flag.Args())
		os.Exit(2)
	}
	if *showVersion {
		fmt.Printf("byzd %s\n", version)
		return
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	cfg.Logger = daemon.NewConsoleLogger(os.Stderr, "byzd: ", level)
	cfg.Version = version
	if !*noNet {
		cfg.Network = &netcfg.Config{}
	}
	cfg.Services = !*noServices
	if !*noColdplug {
		cfg.Coldplug = runColdplug
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if !*noMesh && !*noNet {
		m, err := startMesh(ctx, cfg.StateDir, cfg.Logger)
		if err != nil {
			cfg.Logger.Error("mesh: not started", "err", err)
		} else {
			cfg.Mesh = m
		}
	}
	if err := daemon.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: byzd [flags]

byzd is the Byzantium node's control daemon, started by the base's init after
the switch to the new root: the HTTPS panel and JSON API (HTTP only redirects),
byz's root-only socket, modules and their sandboxed services, persistence and
cloning. It runs until SIGTERM or SIGINT.

Exit status: 0 after a clean stop, 1 on a failure, 2 for a bad flag.

Flags:
`)
	flag.CommandLine.SetOutput(w)
	flag.PrintDefaults()
}

// runColdplug loads the drivers for the machine's devices from the running
// kernel's module tree (the base's 000-kernel.xzm).
func runColdplug(log *slog.Logger) {
	start := time.Now()
	dir, err := coldplug.ModDir("/")
	if err != nil {
		log.Warn("coldplug", "err", err)
		return
	}
	res := coldplug.Run(coldplug.Options{ModDir: dir, Logf: func(format string, args ...any) {
		log.Warn(fmt.Sprintf(format, args...))
	}})
	log.Info("coldplug: drivers for the machine's devices", "devices", res.Devices, "loaded", len(res.Loaded),
		"failed", len(res.Failed), "took", time.Since(start).Round(time.Millisecond))
	log.Debug("coldplug", "loaded", res.Loaded, "no-device", res.NoDevice, "missing", res.Missing)
}

// Command byzd is the node's control daemon, started by the base's init
// after switch_root. Build it static:
//
//	CGO_ENABLED=0 go build ./cmd/byzd
//
// All of its logic is in runtime/daemon.
package main

import (
	"context"
	"flag"
	"fmt"
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
	flag.StringVar(&cfg.StateDir, "state", "/var/lib/byzantium", "directory for state kept across reboots (TLS certificate)")
	flag.StringVar(&cfg.HTTPSAddr, "https", ":443", "HTTPS listen address")
	flag.StringVar(&cfg.HTTPAddr, "http", ":80", "HTTP listen address (redirects to HTTPS)")
	flag.StringVar(&cfg.NodeName, "node-name", daemon.Hostname(), "node name for the certificate and the panel (default: the host name, else byzantium)")
	flag.StringVar(&cfg.RootDir, "root", "/", "root of the running system, where module manifests are read")
	noNet := flag.Bool("no-net", false, "leave networking alone (no loopback, no DHCP)")
	noServices := flag.Bool("no-services", false, "run no modules or services (the panel then only reports)")
	noColdplug := flag.Bool("no-coldplug", false, "load no drivers for the machine's devices (byz-init loads the network's; byzd the rest once it serves)")
	debug := flag.Bool("debug", false, "log debug lines too")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "byzd: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
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
	if err := daemon.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("exiting", "err", err)
		os.Exit(1)
	}
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

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"byzantium/runtime/coldplug"
	"byzantium/runtime/mesh"
	"byzantium/runtime/mesh/batadv"
	"byzantium/runtime/mesh/gateway"
	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/mesh/radio"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/sandbox"
)

// Where the mesh keeps what it makes at run time: babeld's
// configuration, socket and state file (meshRun, which babeld sees as
// meshInside: the sandbox mounts a tmpfs of its own on /run), and the
// root babeld runs in (meshRoot), which must not be under meshRun since
// meshRun is bound into it.
const (
	meshRun    = "/run/byzantium/mesh"
	meshInside = "/mesh"
	meshRoot   = "/run/byzantium/mesh-root"
	babeld     = "/usr/sbin/babeld"
	// wpaRun holds wpa_supplicant's configurations (the mesh key) and
	// control sockets: not under meshRun, which babeld's uid owns.
	wpaRun = "/run/byzantium/wpa"
	// babeldUID runs babeld: not root, below the services' ids
	// (runtime/service starts at 61000).
	babeldUID = 60999
)

// meshNode is the mesh as byzd's API and panel see it (daemon.Mesh): the
// manager, which runs babeld, and the gateway, which shares an uplink.
type meshNode struct {
	m *mesh.Manager
	g *gateway.Gateway
}

func (n *meshNode) Status() nodeapi.Mesh { return n.m.Status() }

// Apply hands the settings to the manager and the gateway; neither waits
// for the mesh to converge.
func (n *meshNode) Apply(s nodeapi.MeshSettings) error {
	if err := n.m.Apply(s); err != nil {
		return err
	}
	if err := n.g.Set(s.Share, s.Uplink); err != nil {
		return err
	}
	return n.g.SetTargets(s.Check)
}

// startMesh makes the mesh manager and the gateway and runs them until
// ctx ends. byzd's state folder keeps the mesh identity (stateDir/mesh),
// which `byz clone` never copies.
func startMesh(ctx context.Context, stateDir string, log *slog.Logger) (*meshNode, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }
	g, err := gateway.New(gateway.Config{Logf: logf})
	if err != nil {
		return nil, err
	}
	m, err := mesh.New(mesh.Options{
		StateDir:     filepath.Join(stateDir, "mesh"),
		RunDir:       meshRun,
		BabeldRunDir: meshInside,
		Babeld:       babeld,
		Launch:       confinedBabeld(self),
		Logf:         logf,
		Batman:       &batadv.Engine{Logf: logf},
		// wpa_supplicant (SAE on keyed 802.11s radios) runs as root: it
		// needs the radio's raw frames and nl80211.
		LaunchSupplicant: launchSupplicant,
		SupplicantDir:    wpaRun,
		Gateway: func(gw *nodeapi.MeshGateway) {
			s := g.Status()
			gw.Share, gw.Uplink, gw.Sharing, gw.Check = s.Share, s.Uplink, s.Sharing, s.Check
			gw.UplinkIPv6, gw.SharingIPv6, gw.CheckIPv6 = s.UplinkIPv6, s.SharingIPv6, s.CheckIPv6
		},
	}, meshcfg.Defaults())
	if err != nil {
		return nil, err
	}
	// The NAT's modules and batman-adv, in case the kernel cannot load
	// them on demand (it asks /sbin/modprobe, which a node may lack). A
	// kernel without batman-adv (the cloud kernel) refuses only the
	// protocols batman-adv and both, in the mesh's status.
	if dir, err := coldplug.ModDir("/"); err == nil {
		// And the crypto SAE needs on a keyed 802.11s mesh.
		res := coldplug.Load(coldplug.Options{ModDir: dir, Logf: logf}, append(slices.Clone(gateway.KernelModules), radio.SAEKernelModules...)...)
		if len(res.Missing)+len(res.Failed) > 0 {
			log.Warn("mesh: kernel modules for sharing an uplink and SAE", "missing", res.Missing, "failed", res.Failed)
		}
		if res := coldplug.Load(coldplug.Options{ModDir: dir, Logf: logf}, batadv.KernelModule); len(res.Missing)+len(res.Failed) > 0 {
			log.Info("mesh: no batman-adv in this kernel: protocols batman-adv and both will not run", "missing", res.Missing, "failed", res.Failed)
		}
	}
	go func() {
		if err := m.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("mesh: the manager stopped", "err", err)
		}
	}()
	go func() {
		if err := g.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("mesh: the gateway stopped", "err", err)
		}
	}()
	go syncMeshInterfaces(ctx, m, g)
	return &meshNode{m: m, g: g}, nil
}

// syncMeshInterfaces tells the gateway which interfaces mesh, so that a
// default route on one of them is never taken for an uplink.
func syncMeshInterfaces(ctx context.Context, m *mesh.Manager, g *gateway.Gateway) {
	var last []string
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		var names []string
		for _, i := range m.Status().Interfaces {
			if i.Meshing {
				names = append(names, i.Name)
			}
		}
		if !slices.Equal(names, last) {
			g.SetMeshInterfaces(names)
			last = names
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// confinedBabeld runs babeld as byzd runs services (runtime/sandbox): its
// own uid, namespaces, no_new_privs, and of all capabilities only
// CAP_NET_ADMIN, which it needs to install routes; in a root of
// read-only binds of the node's programs and libraries (the babeld boot
// module is part of the node's root) and its run folder, the one place
// it writes. byzd sets the kernel's forwarding and rp_filter itself
// (skip-kernel-setup), so babeld needs no more.
func confinedBabeld(self string) func(ctx context.Context, argv []string) (*exec.Cmd, error) {
	return func(ctx context.Context, argv []string) (*exec.Cmd, error) {
		if len(argv) == 0 {
			return nil, errors.New("mesh: no babeld command")
		}
		if _, err := os.Stat(argv[0]); err != nil {
			return nil, fmt.Errorf("mesh: babeld is not on this node (the babeld module): %w", err)
		}
		// The manager writes the configuration as root; babeld reads it,
		// makes its socket and state file there.
		if err := chownTree(meshRun, babeldUID); err != nil {
			return nil, err
		}
		binds := []sandbox.Bind{{Src: meshRun, Dst: meshInside, Writable: true}}
		for _, d := range []string{"/usr", "/lib", "/lib64"} {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				binds = append(binds, sandbox.Bind{Src: d})
			}
		}
		if _, err := sandbox.BindRoot(meshRoot, binds); err != nil {
			return nil, err
		}
		return sandbox.Command(self, sandbox.Spec{Root: meshRoot, Argv: argv, Env: []string{"PATH=/usr/sbin:/usr/bin"},
			UID: babeldUID, GID: babeldUID, Caps: []string{"CAP_NET_ADMIN"}, Privileged: true, OpenFiles: 256, Processes: 16})
	}
}

// launchSupplicant runs wpa_supplicant from the image (the wpasupplicant
// package); its absence is an error the radio's reason shows.
func launchSupplicant(_ context.Context, argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("mesh: no wpa_supplicant command")
	}
	p, err := mesh.FindSupplicant("/usr/sbin/wpa_supplicant", "/sbin/wpa_supplicant")
	if err != nil {
		return nil, err
	}
	return exec.Command(p, argv[1:]...), nil
}

// chownTree gives dir and the files in it to uid (not following links).
func chownTree(dir string, uid int) error {
	if err := os.Lchown(dir, uid, uid); err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	for _, e := range entries {
		if err := os.Lchown(filepath.Join(dir, e.Name()), uid, uid); err != nil {
			return fmt.Errorf("mesh: %w", err)
		}
	}
	return nil
}

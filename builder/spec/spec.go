// Package spec reads the YAML build spec: what goes into a Byzantium image
// (kernel, modules, rootcopy folders, boot menu) and which media to write.
//
// Parsing is strict, because a typo that is silently ignored costs a whole
// build (or a node that boots without its service): an unknown key, a value
// of the wrong type, a duplicate key or a second YAML document is an error
// carrying FILE:LINE:COL. Load then validates everything that can be checked
// before a build writes anything, and reports every problem at once.
//
// The schema (keys are lower-case, words joined by dashes, as in byz's
// flags):
//
//	name: byzantium                  # required; a module-style name, names the outputs
//	version: "1.0"                   # optional; quote it, or YAML reads a number
//	kernel:                          # required; exactly one of:
//	  deb: ../.cache/debs/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb
//	  # vmlinuz: boot/vmlinuz        #   a kernel image and
//	  # modules: lib/modules/6.1.0   #   its /lib/modules/VERSION tree
//	cmdline: quiet                   # optional; appended to every entry's kernel command line
//	base:                            # required, at least one: always loaded (the root filesystem)
//	  - name: busybox
//	    sources: [../.cache/debs/busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb]
//	    comp: zstd                   # zstd (default), gzip or xz
//	    level: 19                    # 0 or absent: the compressor's default
//	    block-size: 128K             # a power of two, 4K to 1M; default 128K
//	    depends: []                  # names of modules at the same layer or below
//	    exclude: []                  # paths left out of every source: usr/share/doc/*, a folder
//	    services: []                 # what byzd may run from this module (see below)
//	modules: []                      # loaded at boot; same form as base
//	optional: []                     # on the media, loaded on demand; same form
//	rootcopy: [rootcopy/]            # folders copied over the root at boot
//	console:                         # optional; what the first serial port offers
//	  shell: login                   # login (default): the admin password opens a root shell;
//	                                 # root: a root shell without a password (test images);
//	                                 # none: no shell (see Console)
//	mesh:                            # optional; the mesh's settings on the node (see Mesh)
//	  protocol: babel                # babel (default), batman-adv or both
//	  ssid: byzantium-mesh           # 1 to 32 bytes
//	  channel: 6                     # 1 to 13, or 36 to 165 (5 GHz)
//	  interfaces: []                 # empty: every port and radio that can mesh
//	  share: auto                    # auto (default), on or off: share an uplink
//	  uplink: ""                     # empty: the interface with a DHCP default route
//	  check: []                      # Internet check targets, IP:port
//	menu:                            # optional; default: one entry labelled with the name
//	  - label: Byzantium
//	    append: ""                   # more kernel parameters for this entry
//	    default: true                # at most one; none marked: the first
//	outputs:                         # required, at least one
//	  iso: true                      # true: NAME.iso; or a file name
//	  usb:                           # true, or:
//	    file: byzantium-usb.img      #   default NAME-usb.img
//	    size: 2G                     #   whole image, 64M to 2T in whole MiB; default: contents + spare
//	    spare: 512M                  #   free space kept in the FAT partition for a save.dat
//	  dir: true                      # true: a folder NAME; or a folder name (never ".": see below)
//
// A module's services end up in its manifest (modules/manifest.Service,
// /usr/share/byzantium/modules/NAME.json), where byzd finds them. Their keys
// are the manifest's own JSON names, so a service reads the same in the
// spec and in the module (limits keep their underscores):
//
//	services:
//	  - name: ngircd                 # required; unique in the spec
//	    description: IRC server
//	    command: [/usr/sbin/ngircd, --nodaemon]   # required; an absolute path first
//	    user: ircd                   # the account it runs as; default its name; never root
//	    capabilities: []             # the only ones it keeps, e.g. CAP_NET_BIND_SERVICE
//	    privileged: false            # true to keep root-equivalent ones (manifest.Capabilities)
//	    ports: [6667/tcp]            # NUMBER/tcp or NUMBER/udp
//	    depends: []                  # services (of any module in the spec) started first
//	    environment: {TZ: UTC}       # string values: quote numbers
//	    config:                      # files written from Go templates before each start, never in data
//	      - path: /etc/ngircd/ngircd.conf
//	        mode: "0644"             # quoted octal
//	        template: |              # {{.Node}}: the node's name; {{.Data}}: the data folder
//	          Name = {{.Node}}.irc.local
//	    data: /var/lib/ngircd        # persistent, private folder under /var/lib/; default /var/lib/NAME
//	    health: {tcp: "127.0.0.1:6667", expect: ""}  # expect: a prefix of the first line
//	    limits: {memory_mb: 64, processes: 8, open_files: 1024}  # 0 or absent: byzd's default
//
// Validate checks services with the manifest's rules (manifest.Validate),
// each error at its value, and also what the manifest leaves to its
// writer: a template must parse and use only .Node, .Data, .User and
// .Lang, a mode is octal, health.tcp is HOST:PORT, limits are not
// negative, and a service depends only on services in the spec.
//
// A module source is anything modules.ParseSource accepts: a directory, a
// tarball, a .deb, a prebuilt .xzm, oci:PATH[:TAG], docker-archive:FILE[:TAG],
// npm:DIR (an npm application's package lock; see modules/npm) or a
// registry reference. Relative paths (of sources, the kernel and
// rootcopy folders) resolve against the spec file's folder; a source that
// neither starts with ./ ../ or /, nor ends in / or a known file suffix, nor
// exists there, is taken as a registry reference, so write ./ to be sure.
// Output names are relative to the build's output directory (byz build -o).
// A build replaces each output whole, so an output is never the output
// directory itself, and a dir output replaces only a folder that an earlier
// build wrote (every file in it listed in its byzantium/manifest.json).
// There is no ${VAR} expansion: the spec and its inputs alone decide the
// image, which is what makes builds reproducible.
//
// YAML anchors and aliases work; merge keys (<<) do not. An empty list may
// be written as an empty value.
package spec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"byzantium/modules/manifest"
	"byzantium/modules/squashfs"
)

// MaxFileSize bounds a spec file: real ones are a few kilobytes, and the
// bound keeps a wrong path (an ISO, say) from being parsed as YAML.
const MaxFileSize = 1 << 20

// Spec is a parsed build spec. Paths are absolute, resolved against Dir.
type Spec struct {
	File string // the spec file as given to Load or Parse; errors name it
	Dir  string // absolute: relative paths in the file resolve against it

	Name     string
	Version  string
	Kernel   Kernel
	Cmdline  string   // appended to every menu entry's kernel command line
	Base     []Module // always loaded
	Modules  []Module // loaded at boot
	Optional []Module // on the media, loaded on demand (load=)
	Rootcopy []string // folders copied over the root at boot
	Menu     []MenuEntry
	Outputs  Outputs
	// Console is what the serial console offers: a password prompt
	// (the default), a root shell, or nothing (see Console).
	Console Console
	// Mesh is the mesh's settings, defaults filled in (see Mesh).
	Mesh Mesh

	// pos maps a key path ("base[0].block-size") to where its value is in
	// File, so that Validate (and later the builder) can point at it.
	pos map[string]Pos
}

// Kernel names the kernel: either Deb (a Debian linux-image package), or
// Vmlinuz with Modules (its /lib/modules/VERSION tree).
type Kernel struct {
	Deb     string
	Vmlinuz string
	Modules string
}

// Module is one module to build, named NNN-Name.xzm on the media.
type Module struct {
	Name      string
	Sources   []string // merged in order; see modules.ParseSource
	Comp      string   // "zstd", "gzip" or "xz"; Parse sets "zstd" when absent
	Level     int      // 0: the compressor's default
	BlockSize int      // bytes; Parse sets squashfs.DefaultBlockSize when absent
	Depends   []string
	// Exclude leaves out of every source the entries whose path matches
	// one of these patterns, and what is under them (entry.Exclude:
	// path.Match against the path without its leading slash): a Debian
	// package's links that only its maintainer scripts complete.
	Exclude []string
	// Services go into the module's manifest as they are, for byzd.
	Services []manifest.Service
}

// MenuEntry is one boot menu entry.
type MenuEntry struct {
	Label   string
	Append  string // kernel parameters after Spec.Cmdline
	Default bool
}

// Outputs says which media to write. Names are relative to the output
// directory; an empty name (or nil USB) means that output is not wanted.
type Outputs struct {
	ISO string // hybrid ISO file
	USB *USB   // disk image
	Dir string // plain folder holding the media tree
}

// USB is the disk image output.
type USB struct {
	File string
	Size int64 // bytes; 0: as small as the contents allow, plus Spare
	// Spare is how much free space the FAT partition keeps once the media
	// is on it, for a save.dat (`byz persist create --image`, `--media`,
	// or on the node), which byz-init then uses without being told; the
	// build fails if the contents leave less. A save.dat is at most
	// 4 GiB − 1 byte (FAT32's largest file).
	Spare int64
}

// Options says how much Load checks. The zero value checks everything.
type Options struct {
	// SkipInputChecks skips the checks that look at the file system
	// (sources, kernel and rootcopy folders exist), for reading a spec
	// whose inputs have not been fetched or built yet.
	SkipInputChecks bool
}

// Load reads, parses and validates the spec at path. A spec with errors
// returns nil and every error found, joined; each is an *Error. Syntax and
// type errors are reported first, alone: validating a half-read spec would
// only add noise.
func Load(path string, opts Options) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, &Error{Pos: Pos{File: path}, Err: fmt.Errorf("larger than %d bytes: is this a spec?", MaxFileSize)}
	}
	s, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(opts); err != nil {
		return nil, err
	}
	return s, nil
}

// Parse decodes a spec from data; path names it in errors and its folder is
// where relative paths resolve. Parse checks syntax, keys and types, and
// fills in defaults; Validate checks the values.
func Parse(data []byte, path string) (*Spec, error) {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	d := &decoder{file: path, dir: dir, pos: map[string]Pos{}}
	s := d.decode(data)
	if len(d.errs) > 0 {
		return nil, joinSorted(d.errs)
	}
	s.File, s.Dir, s.pos = path, dir, d.pos
	d.applyDefaults(s)
	return s, nil
}

// Position returns where the value at a key path (as errors name it, e.g.
// "base[1].sources[0]") is in the spec file, so that later stages of a
// build can point at the line that caused a failure. An unknown path gives
// the file alone.
func (s *Spec) Position(path string) Pos {
	if p, ok := s.pos[path]; ok {
		return p
	}
	return Pos{File: s.File}
}

// applyDefaults resolves every default in one place, so that the builder
// never has to know what an absent key means.
func (d *decoder) applyDefaults(s *Spec) {
	for _, list := range [][]Module{s.Base, s.Modules, s.Optional} {
		for i := range list {
			if list[i].Comp == "" {
				list[i].Comp = "zstd"
			}
			if list[i].BlockSize == 0 {
				list[i].BlockSize = squashfs.DefaultBlockSize
			}
		}
	}
	d.meshDefaults(&s.Mesh)
	if d.isoDefault {
		s.Outputs.ISO = s.Name + ".iso"
	}
	if s.Outputs.USB != nil && s.Outputs.USB.File == "" {
		s.Outputs.USB.File = s.Name + "-usb.img"
	}
	if d.dirDefault {
		s.Outputs.Dir = s.Name
	}
	if s.Console.Shell == "" {
		s.Console.Shell = ShellLogin
	}
	if len(s.Menu) == 0 {
		s.Menu = []MenuEntry{{Label: s.Name}}
	}
	for _, e := range s.Menu {
		if e.Default {
			return
		}
	}
	s.Menu[0].Default = true
}

// errNoSpec reports an empty file.
var errNoSpec = errors.New("empty spec: want a mapping with name, kernel, base and outputs")

// Package media plans a media tree: where the kernel, the initramfs, the
// modules and the rootcopy folders go beside the bootloader files
// (image/bootloader), the tree as a sorted entry stream that checks every
// file against the digest it was planned with, its manifest
// (byzantium/manifest.json), its media ID, and the boot menu record
// (byzantium/boot.json) from which a clone plans a tree of its own.
package media

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"byzantium/image/bootloader"
	"byzantium/modules/entry"
	"byzantium/overlays"
)

// ErrBadMedia reports Media inputs that cannot make a media tree, or a
// media tree whose boot menu cannot be read back.
var ErrBadMedia = errors.New("media: bad media input")

// Media describes a media tree. Files come as host paths and are read
// twice, never copied: once by Plan, which hashes them for the manifest
// and the media ID, and once by the stream, which checks they still hash
// the same.
type Media struct {
	Flavour   bootloader.Flavour
	Loader    *bootloader.Loader
	Kernel    string // becomes boot/vmlinuz
	Initramfs string // becomes boot/initrd.zst
	// Base, Modules and Optional are .xzm files for byzantium/base,
	// byzantium/modules and byzantium/optional; their names are kept.
	Base, Modules, Optional []string
	// Rootcopy folders are merged in order into byzantium/rootcopy: a
	// later folder's file replaces an earlier one's.
	Rootcopy []string
	// Menu configures both bootloaders; Plan fills in its MediaID.
	Menu bootloader.Config
	// ModTime is the time of generated entries and the latest time any
	// entry keeps (SOURCE_DATE_EPOCH); the zero value is the Unix epoch.
	ModTime time.Time
	// Sums, when set, shares host file digests with other plans of the
	// same build (nil: every file is hashed).
	Sums *Sums
	// FS, when set, holds the inputs: Kernel, Initramfs, the modules and
	// the Rootcopy folders are paths in it (as fs.FS names them), not on
	// the host. A clone plans a new media tree from another one this way.
	FS fs.FS
	// Digests, when set, gives the size and sha256 of inputs by the name
	// they are given as (a path in FS, or a host path). Plan trusts them
	// rather than reading the files; the stream still hashes every file
	// as it goes and stops with ErrChanged naming one that differs. A
	// clone passes the source media's manifest, so each file is read once,
	// as it is written, and checked against that manifest.
	Digests map[string]ManifestFile
	// IDSalt, when set, goes into the media ID: a clone, whose payload
	// may be its source's, gets an ID of its own.
	IDSalt []byte
	// Unlisted marks media paths whose manifest entries get "unlisted":
	// files no build made (modules dropped onto a stick by hand), which
	// a clone carries as found.
	Unlisted map[string]bool
}

// Tree is a planned media tree: every entry, hashed, with the media ID
// and the manifest that follow from them.
type Tree struct {
	// ID is the media ID: the first 16 hex digits of the SHA-256 of the
	// payload listing (every file that does not embed the ID, with its
	// size and digest) and of the menu. The configs, the marker, the EFI
	// image and the manifest embed it, so they cannot be part of it.
	ID string
	// Manifest is byzantium/manifest.json.
	Manifest []byte
	nodes    []*node // sorted by sortKey
	modTime  time.Time
}

// node is one planned entry: its header and where its body comes from.
type node struct {
	hdr  entry.Header
	src  string // host file of the body (in fsys when set), or "" when data holds it
	fsys fs.FS
	data []byte
	sum  string // hex SHA-256 of the body, for regular files
}

// ManifestFile is one file in the manifest.
type ManifestFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Unlisted marks a file no build made: a module someone dropped onto
	// the media by hand, which a clone carried as it found it. Its digest
	// says what was copied; nothing vouches for where it came from.
	Unlisted bool `json:"unlisted,omitempty"`
}

// Manifest is the content of byzantium/manifest.json: every regular file
// of the tree but the manifest itself, sorted by path.
type Manifest struct {
	ID    string         `json:"id"`
	Files []ManifestFile `json:"files"`
}

// Plan reads and hashes every input and lays out the tree. Nothing is
// written; a missing or unreadable input is an error naming it.
func Plan(m Media) (*Tree, error) {
	p := &planner{files: map[string]*node{}, mtime: m.ModTime, sums: m.Sums, fsys: m.FS, digests: m.Digests}
	if p.mtime.IsZero() {
		p.mtime = time.Unix(0, 0).UTC()
	}
	if err := p.payload(&m); err != nil {
		return nil, err
	}
	id, err := p.mediaID(&m)
	if err != nil {
		return nil, err
	}
	cfg := m.Menu
	cfg.MediaID = id
	if err := p.configs(&m, cfg); err != nil {
		return nil, err
	}
	p.addData(overlays.MarkerPath(id), []byte(id+"\n"))
	t := &Tree{ID: id, modTime: p.mtime}
	man := Manifest{ID: id, Files: []ManifestFile{}}
	for _, n := range p.sorted() {
		if n.hdr.Type == entry.TypeRegular {
			man.Files = append(man.Files, ManifestFile{Path: n.hdr.Path, Size: n.hdr.Size, SHA256: n.sum, Unlisted: m.Unlisted[n.hdr.Path]})
		}
	}
	t.Manifest, err = json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("media: manifest: %w", err)
	}
	t.Manifest = append(t.Manifest, '\n')
	p.addData(overlays.ManifestPath, t.Manifest)
	p.addDirs()
	t.nodes = p.sorted()
	return t, nil
}

// Reader returns a new stream of the tree: the root, then a depth-first
// walk with names sorted bytewise, each directory before its contents.
func (t *Tree) Reader() entry.Reader { return &stream{nodes: t.nodes} }

type planner struct {
	files   map[string]*node
	mtime   time.Time
	sums    *Sums
	fsys    fs.FS
	digests map[string]ManifestFile
}

func (p *planner) sorted() []*node {
	out := make([]*node, 0, len(p.files))
	for _, n := range p.files {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *node) int { return strings.Compare(sortKey(a.hdr.Path), sortKey(b.hdr.Path)) })
	return out
}

// sortKey makes a bytewise sort a depth-first walk: "/" sorts below every
// other byte, so "a/b" comes before "a-b" and a directory's contents
// follow it directly.
func sortKey(p string) string {
	if p == "." {
		return ""
	}
	return strings.ReplaceAll(p, "/", "\x00")
}

// addData adds a generated file held in memory.
func (p *planner) addData(mediaPath string, data []byte) {
	sum := sha256.Sum256(data)
	p.files[mediaPath] = &node{hdr: entryHeader(mediaPath, int64(len(data)), p.mtime), data: data, sum: hex.EncodeToString(sum[:])}
}

// entryHeader is the header of a file the media tree holds: its mode and
// owner say nothing about the media.
func entryHeader(mediaPath string, size int64, mtime time.Time) entry.Header {
	return entry.Header{Path: mediaPath, Type: entry.TypeRegular, Mode: 0o644, ModTime: mtime, Size: size}
}

// addDirs adds every directory the files imply that no rootcopy folder
// named, and the root.
func (p *planner) addDirs() {
	for _, n := range p.sorted() {
		for d := path.Dir(n.hdr.Path); ; d = path.Dir(d) {
			if _, ok := p.files[d]; !ok {
				p.files[d] = &node{hdr: entry.Header{Path: d, Type: entry.TypeDir, Mode: 0o755, ModTime: p.mtime}}
			}
			if d == "." {
				break
			}
		}
	}
}

// mediaID hashes the payload listing and the menu.
func (p *planner) mediaID(m *Media) (string, error) {
	var files []ManifestFile
	for _, n := range p.sorted() {
		if n.hdr.Type == entry.TypeRegular {
			files = append(files, ManifestFile{Path: n.hdr.Path, Size: n.hdr.Size, SHA256: n.sum})
		}
	}
	in := struct {
		Flavour string
		Files   []ManifestFile
		Menu    bootloader.Config
	}{m.Flavour.String(), files, m.Menu}
	b, err := json.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("media: media ID: %w", err)
	}
	if m.IDSalt != nil {
		b = append(append(b, 0), m.IDSalt...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// configs adds the bootloader configs and, for an ISO, the EFI image.
func (p *planner) configs(m *Media, cfg bootloader.Config) error {
	files, err := m.Loader.Configs(m.Flavour, cfg, p.mtime)
	if err != nil {
		return err
	}
	for _, f := range files {
		p.addData(f.Path, f.Data)
	}
	return nil
}

// xzmPaths checks module file names and returns their media paths.
func xzmPaths(dir string, files []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range files {
		name := filepath.Base(f)
		if !strings.HasSuffix(name, overlays.ModuleExt) || name == overlays.ModuleExt {
			return nil, fmt.Errorf("%w: module %s: the name must end in %s", ErrBadMedia, f, overlays.ModuleExt)
		}
		mp := overlays.FolderPath(dir) + "/" + name
		if prev, dup := out[mp]; dup {
			return nil, fmt.Errorf("%w: modules %s and %s would both be %s", ErrBadMedia, prev, f, mp)
		}
		out[mp] = f
	}
	return out, nil
}

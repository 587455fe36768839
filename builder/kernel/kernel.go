// Package kernel takes a Linux kernel apart for the initramfs: it reads a
// linux-image package (a .deb, or any entry stream of the same tree), writes
// out the vmlinuz and the lib/modules/<version> tree, indexes the modules
// as depmod would, and computes which .ko files a set of wanted modules
// needs, in load order.
package kernel

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"byzantium/modules/deb"
	"byzantium/modules/entry"
)

// ExtractOptions says where Extract puts what it finds. The zero value
// writes nothing and only builds the index.
type ExtractOptions struct {
	// Vmlinuz is the file to write boot/vmlinuz-* to; "" skips it.
	Vmlinuz string
	// ModulesDir receives the contents of lib/modules/<version>/ (kernel/…,
	// modules.builtin, …) plus a generated modules.dep, modules.alias and
	// modules.softdep, so that LoadIndex can read it later; "" skips
	// writing files.
	ModulesDir string
}

// Kernel is what Extract found.
type Kernel struct {
	// Version is the release, from the lib/modules/<version> directory:
	// "6.1.0-56-cloud-amd64".
	Version string
	// Vmlinuz is ExtractOptions.Vmlinuz once written, else "".
	Vmlinuz string
	// Modules indexes every .ko file of the tree.
	Modules *Index
}

// ExtractDeb reads a linux-image .deb from r (streamed, nothing staged);
// name labels errors.
func ExtractDeb(r io.Reader, name string, opts ExtractOptions) (*Kernel, error) {
	p, err := deb.Open(r, name)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	defer p.Close()
	k, err := Extract(p, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}

// Extract reads a kernel package's tree (boot/vmlinuz-*, lib/modules/* or
// usr/lib/modules/*) from an entry stream. Dependencies come from each
// module's .modinfo, because packages carry no modules.dep; a modules.dep
// in the stream is ignored for the same reason depmod ignores it.
func Extract(r entry.Reader, opts ExtractOptions) (*Kernel, error) {
	k := &Kernel{Modules: NewIndex()}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("kernel: reading the package: %w", err)
		}
		if h.Type != entry.TypeRegular {
			continue // directories are made as needed; links are not used
		}
		if strings.HasPrefix(h.Path, "boot/vmlinuz-") {
			if err := k.writeVmlinuz(r, h, opts.Vmlinuz); err != nil {
				return nil, err
			}
			continue
		}
		version, rel, ok := modulesPath(h.Path)
		if !ok {
			continue
		}
		if k.Version != "" && version != k.Version {
			return nil, fmt.Errorf("kernel: the package holds modules for %s and %s: give one kernel at a time", k.Version, version)
		}
		k.Version = version
		if err := k.addModuleFile(r, h, rel, opts.ModulesDir); err != nil {
			return nil, err
		}
	}
	if k.Version == "" {
		return nil, fmt.Errorf("kernel: no lib/modules/<version>/ in the package: is it a linux-image package?")
	}
	if opts.Vmlinuz != "" && k.Vmlinuz == "" {
		return nil, fmt.Errorf("kernel: no boot/vmlinuz-* in the package")
	}
	k.Modules.sortAliases()
	if opts.ModulesDir != "" {
		if err := k.writeIndex(opts.ModulesDir); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// modulesPath splits "lib/modules/6.1.0-x/kernel/fs/a.ko" into the version
// and the path below it.
func modulesPath(p string) (version, rel string, ok bool) {
	p = strings.TrimPrefix(p, "usr/")
	rest, ok := strings.CutPrefix(p, "lib/modules/")
	if !ok {
		return "", "", false
	}
	version, rel, ok = strings.Cut(rest, "/")
	return version, rel, ok && rel != ""
}

func (k *Kernel) writeVmlinuz(r io.Reader, h *entry.Header, dst string) error {
	if dst == "" {
		return nil
	}
	if k.Vmlinuz != "" {
		return fmt.Errorf("kernel: two kernel images in the package (%s and another)", h.Path)
	}
	if err := writeFile(dst, io.LimitReader(r, h.Size), 0o644); err != nil {
		return fmt.Errorf("kernel: writing %s: %w", h.Path, err)
	}
	k.Vmlinuz = dst
	return nil
}

// addModuleFile indexes a file under lib/modules/<version>/ and, when dir
// is set, writes it there. A .ko is read into memory (the largest are a few
// MB) because debug/elf needs random access.
func (k *Kernel) addModuleFile(r io.Reader, h *entry.Header, rel, dir string) error {
	var body io.Reader = io.LimitReader(r, h.Size)
	switch {
	case strings.HasSuffix(rel, ".ko"):
		data, err := io.ReadAll(body)
		if err != nil {
			return fmt.Errorf("kernel: reading %s: %w", h.Path, err)
		}
		mi, err := ReadModinfo(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("kernel: %s: %w", h.Path, err)
		}
		name := mi.Name
		if name == "" {
			name = CanonicalName(rel)
		}
		k.Modules.Modules[name] = &Module{Name: name, Path: rel, Depends: mi.Depends, SoftPre: mi.SoftPre, SoftPost: mi.SoftPost}
		for _, a := range mi.Aliases {
			k.Modules.Aliases = append(k.Modules.Aliases, Alias{Pattern: a, Module: name})
		}
		body = bytes.NewReader(data)
	case rel == "modules.builtin" || rel == "modules.builtin.modinfo":
		data, err := io.ReadAll(body)
		if err != nil {
			return fmt.Errorf("kernel: reading %s: %w", h.Path, err)
		}
		parse := k.Modules.ParseBuiltin
		if rel == "modules.builtin.modinfo" {
			parse = k.Modules.ParseBuiltinModinfo
		}
		if err := parse(bytes.NewReader(data)); err != nil {
			return fmt.Errorf("kernel: %s: %w", h.Path, err)
		}
		body = bytes.NewReader(data)
	case path.Base(rel) == "modules.dep" || path.Base(rel) == "modules.alias" || path.Base(rel) == "modules.softdep":
		return nil // regenerated from .modinfo by writeIndex
	}
	if dir == "" {
		return nil
	}
	if err := writeFile(filepath.Join(dir, filepath.FromSlash(rel)), body, 0o644); err != nil {
		return fmt.Errorf("kernel: extracting %s: %w", h.Path, err)
	}
	return nil
}

// writeIndex writes modules.dep, modules.alias and modules.softdep beside
// the modules.
func (k *Kernel) writeIndex(dir string) error {
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{{"modules.dep", k.Modules.WriteModulesDep}, {"modules.alias", k.Modules.WriteModulesAlias},
		{"modules.softdep", k.Modules.WriteModulesSoftdep}} {
		var buf bytes.Buffer
		if err := f.write(&buf); err != nil {
			return fmt.Errorf("kernel: generating %s: %w", f.name, err)
		}
		if err := writeFile(filepath.Join(dir, f.name), &buf, 0o644); err != nil {
			return fmt.Errorf("kernel: writing %s: %w", f.name, err)
		}
	}
	return nil
}

func writeFile(name string, r io.Reader, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

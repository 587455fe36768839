package auth

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
)

// Credentials in the manner of systemd's: small named secrets a VM host or
// the image's builder hands to the node, so that a node can be logged
// into without a setup code (tests, fleets).
const (
	// CredPassword holds the admin password in the clear.
	CredPassword = "byz.admin-password"
	// CredPasswordHash holds an argon2id PHC string.
	CredPasswordHash = "byz.admin-password-hash"
	// CredentialsDir, in the root, holds credentials put in the image at
	// build time, one file per name.
	CredentialsDir = "etc/byzantium/credentials"
	// fwCfgDir is where QEMU's -fw_cfg name=opt/io.systemd.credentials/NAME
	// appears (the qemu_fw_cfg driver).
	fwCfgDir = "sys/firmware/qemu_fw_cfg/by_name/opt/io.systemd.credentials"
	// dmiTable is the raw SMBIOS table, where QEMU's -smbios type=11
	// strings are.
	dmiTable = "sys/firmware/dmi/tables/DMI"
)

// Credential is one credential and where it came from.
type Credential struct {
	Value  []byte
	Source string // "smbios", "fw_cfg" or "image"
}

// ReadCredentials returns the credentials found under root (the running
// root, "/" on a node): SMBIOS type 11 strings
// "io.systemd.credential:NAME=VALUE" (or ".binary:NAME=BASE64"), QEMU
// fw_cfg files, and the image's own. A host's credential wins over the
// image's.
func ReadCredentials(root string) map[string]Credential {
	out := map[string]Credential{}
	if entries, err := os.ReadDir(filepath.Join(root, CredentialsDir)); err == nil {
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(root, CredentialsDir, e.Name())); err == nil && e.Type().IsRegular() {
				out[e.Name()] = Credential{Value: bytes.TrimRight(b, "\n"), Source: "image"}
			}
		}
	}
	if entries, err := os.ReadDir(filepath.Join(root, fwCfgDir)); err == nil {
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(root, fwCfgDir, e.Name(), "raw")); err == nil {
				out[e.Name()] = Credential{Value: b, Source: "fw_cfg"}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, dmiTable)); err == nil {
		for _, s := range oemStrings(b) {
			if name, v, ok := parseCredential(s); ok {
				out[name] = Credential{Value: v, Source: "smbios"}
			}
		}
	}
	return out
}

func parseCredential(s string) (string, []byte, bool) {
	if rest, ok := strings.CutPrefix(s, "io.systemd.credential:"); ok {
		name, v, ok := strings.Cut(rest, "=")
		return name, []byte(v), ok && name != ""
	}
	if rest, ok := strings.CutPrefix(s, "io.systemd.credential.binary:"); ok {
		name, v, ok := strings.Cut(rest, "=")
		b, err := base64.StdEncoding.DecodeString(v)
		return name, b, ok && name != "" && err == nil
	}
	return "", nil, false
}

// oemStrings returns the strings of every SMBIOS type 11 (OEM strings)
// structure in a raw table: each structure is a header (type, length,
// handle), its formatted area, then NUL-terminated strings ending with
// an empty one.
func oemStrings(table []byte) []string {
	var out []string
	for off := 0; off+4 <= len(table); {
		typ, length := table[off], int(table[off+1])
		if length < 4 || off+length > len(table) {
			break
		}
		// The string set starts after the formatted area and ends at a
		// double NUL.
		end := bytes.Index(table[off+length:], []byte{0, 0})
		if end < 0 {
			break
		}
		strs := table[off+length : off+length+end]
		if typ == 11 {
			for _, s := range bytes.Split(strs, []byte{0}) {
				if len(s) > 0 {
					out = append(out, string(s))
				}
			}
		}
		if typ == 127 { // end of table
			break
		}
		off += length + end + 2
	}
	return out
}

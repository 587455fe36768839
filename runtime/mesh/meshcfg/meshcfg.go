// Package meshcfg holds the rules for the mesh's settings: what a valid
// protocol, SSID, channel, interface name, share setting and mesh key
// are, and the defaults. The spec (builder/spec), byzd's API and panel
// (runtime/daemon) and the mesh manager (runtime/mesh) all check settings
// with it, so an image cannot be built with a value the node would
// refuse, and the node cannot be told one the manager would.
//
// It imports only the standard library and runtime/nodeapi (the settings'
// wire type).
package meshcfg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"byzantium/runtime/nodeapi"
)

// The defaults, which a spec without a mesh: section gets.
const (
	// DefaultSSID is not the 2011–2014 Byzantium's "Byzantium": those
	// nodes chose their addresses at random and ran olsrd or another
	// babel setup; a new node joining their cell would share a layer 2
	// with routers whose addresses ours do not know to avoid.
	DefaultSSID = "byzantium-mesh"
	// DefaultChannel is 6: one of the three 2.4 GHz channels that do not
	// overlap (1, 6, 11), allowed in every regulatory domain, with no
	// radar detection (DFS), which on 5 GHz keeps most cards from
	// starting an ad-hoc cell or a mesh point at all. The old project's
	// channel 5 overlapped both 1 and 6, the busiest neighbours.
	DefaultChannel = 6
)

// Bounds on what a setting may hold. Everything here may come from a
// panel form, the API or a file on the stick.
const (
	MaxSSID       = 32  // bytes, as 802.11 allows
	MinKey        = 8   // bytes: shorter keys are guessed offline
	MaxKey        = 128 // bytes
	MaxInterfaces = 32  // names in Interfaces
	MaxIfName     = 15  // bytes: the kernel's IFNAMSIZ less the NUL
	MaxChecks     = 8   // Internet check targets
)

// Defaults returns the settings a node has when nothing chose others:
// babel, DefaultSSID, DefaultChannel, every interface that can mesh,
// sharing found uplinks (auto), an open mesh.
func Defaults() nodeapi.MeshSettings {
	return nodeapi.MeshSettings{Protocol: nodeapi.MeshBabel, SSID: DefaultSSID, Channel: DefaultChannel, Share: nodeapi.ShareAuto}
}

// FieldError is a setting that is not valid; Field is its JSON name
// ("channel", "interfaces[1]").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ErrInvalid is what every error of this package is (errors.Is).
var ErrInvalid = errors.New("meshcfg: not a valid setting")

// invalidError is a message that is ErrInvalid without saying so: the
// field's name and the rule are the message.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, args ...any) error {
	return &invalidError{fmt.Sprintf(format, args...)}
}

// ValidateSettings checks every field of s and returns the errors of all
// the fields that are wrong, each a *FieldError (errors.Join). Key is
// checked only when it is set: "" is an open mesh, or with KeepKey the
// current key.
func ValidateSettings(s nodeapi.MeshSettings) error {
	var errs []error
	field := func(name string, err error) {
		if err != nil {
			errs = append(errs, &FieldError{Field: name, Err: err})
		}
	}
	field("protocol", Protocol(s.Protocol))
	field("ssid", SSID(s.SSID))
	field("channel", Channel(s.Channel))
	field("share", Share(s.Share))
	if len(s.Interfaces) > MaxInterfaces {
		field("interfaces", invalid("%d names, at most %d", len(s.Interfaces), MaxInterfaces))
	} else {
		for i, name := range s.Interfaces {
			err := Interface(name)
			if err == nil && slices.Index(s.Interfaces, name) < i {
				err = invalid("%s is named twice", quote(name))
			}
			field(fmt.Sprintf("interfaces[%d]", i), err)
		}
	}
	if len(s.BabelOnly) > MaxInterfaces {
		field("babel_only", invalid("%d names, at most %d", len(s.BabelOnly), MaxInterfaces))
	} else {
		for i, name := range s.BabelOnly {
			err := Interface(name)
			switch {
			case err != nil:
			case slices.Index(s.BabelOnly, name) < i:
				err = invalid("%s is named twice", quote(name))
			case len(s.Interfaces) > 0 && !slices.Contains(s.Interfaces, name):
				err = invalid("%s is not one of the mesh interfaces (%s)", quote(name), strings.Join(s.Interfaces, ", "))
			case name == s.Uplink:
				err = invalid("%s is the uplink: it does not mesh at all", quote(name))
			}
			field(fmt.Sprintf("babel_only[%d]", i), err)
		}
	}
	if s.Uplink != "" {
		err := Interface(s.Uplink)
		if err == nil && slices.Contains(s.Interfaces, s.Uplink) {
			err = invalid("%s is a mesh interface too: an uplink is the way to the Net, not to the mesh", quote(s.Uplink))
		}
		field("uplink", err)
	}
	if s.Key != "" {
		field("key", Key(s.Key))
	}
	if err := CheckTargets(s.Check); err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, j.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Protocol checks a mesh protocol: babel, batman-adv or both.
func Protocol(p string) error {
	switch p {
	case nodeapi.MeshBabel, nodeapi.MeshBatman, nodeapi.MeshBoth:
		return nil
	}
	return invalid("%s: want %s (the default), %s or %s", quote(p), nodeapi.MeshBabel, nodeapi.MeshBatman, nodeapi.MeshBoth)
}

// SSID checks a mesh SSID (the ad-hoc cell's, the 802.11s mesh ID): 1 to
// 32 bytes of UTF-8 without control characters, which would not survive
// the panel and the logs.
func SSID(s string) error {
	switch {
	case s == "":
		return invalid("empty: 1 to %d bytes", MaxSSID)
	case len(s) > MaxSSID:
		return invalid("%s is %d bytes: at most %d", quote(s), len(s), MaxSSID)
	case !utf8.ValidString(s) || hasControl(s):
		return invalid("%s: printable characters only", quote(s))
	}
	return nil
}

// channels5GHz are the 5 GHz channel numbers of 20 MHz channels from 36
// to 165.
var channels5GHz = []int{36, 40, 44, 48, 52, 56, 60, 64, 100, 104, 108, 112, 116, 120, 124, 128, 132, 136, 140, 144, 149, 153, 157, 161, 165}

// Channel checks a wifi channel: 1 to 13 on 2.4 GHz, or a 5 GHz channel
// from 36 to 165. Whether a card and the country allow it is the
// manager's to find out (and to say, per radio).
func Channel(c int) error {
	if (c >= 1 && c <= 13) || slices.Contains(channels5GHz, c) {
		return nil
	}
	return invalid("%d: want 1 to 13 (2.4 GHz) or a 5 GHz channel: 36, 40, 44 … 64, 100 … 144, 149 … 165", c)
}

// Share checks the uplink sharing setting: auto, on or off.
func Share(s string) error {
	switch s {
	case nodeapi.ShareAuto, nodeapi.ShareOn, nodeapi.ShareOff:
		return nil
	}
	return invalid("%s: want %s (share an uplink DHCP found while the Internet check passes), %s or %s", quote(s), nodeapi.ShareAuto, nodeapi.ShareOn, nodeapi.ShareOff)
}

// Interface checks a network interface name as the kernel would take it
// (dev_valid_name): 1 to 15 bytes, not "." or "..", no "/", ":" or white
// space; and, stricter, printable ASCII, since the name is shown and
// logged.
func Interface(name string) error {
	switch {
	case name == "":
		return invalid("an empty name")
	case len(name) > MaxIfName:
		return invalid("%s is %d bytes: at most %d", quote(name), len(name), MaxIfName)
	case name == "." || name == "..":
		return invalid("%s is not a name", quote(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == '/' || c == ':' {
			return invalid("%s: letters, digits and punctuation other than / and :", quote(name))
		}
	}
	return nil
}

// Key checks a mesh key: 8 to 128 bytes of UTF-8 without control
// characters (it is typed in a form, and goes into babeld's and the
// radio's configuration).
func Key(k string) error {
	switch {
	case len(k) < MinKey:
		return invalid("%d bytes: at least %d (a short key is guessed from captured traffic)", len(k), MinKey)
	case len(k) > MaxKey:
		return invalid("%d bytes: at most %d", len(k), MaxKey)
	case !utf8.ValidString(k) || hasControl(k):
		return invalid("printable characters only")
	}
	return nil
}

// MaxCheckTarget bounds one Internet check target's length.
const MaxCheckTarget = 256

// Target is one parsed Internet check target: TCP is "IP:PORT" for a
// connect, URL an http(s) address whose answer must be 2xx.
type Target struct {
	TCP, URL string
}

// ParseCheckTarget reads one target of the Internet check, as the spec,
// the panel and the API give it: "tcp:IP:PORT" (an address, not a name:
// DNS may be what is broken) or an http:// or https:// URL. It checks the
// form; CheckTarget adds which addresses make sense.
func ParseCheckTarget(t string) (Target, error) {
	if len(t) > MaxCheckTarget {
		return Target{}, invalid("%s… is %d bytes: at most %d", quote(t[:40]), len(t), MaxCheckTarget)
	}
	if rest, ok := strings.CutPrefix(t, "tcp:"); ok {
		ap, err := netip.ParseAddrPort(rest)
		if err != nil {
			return Target{}, invalid("%s: want tcp:IP:PORT (an IPv6 address in brackets), e.g. tcp:192.0.2.1:443", quote(t))
		}
		if ap.Port() == 0 {
			return Target{}, invalid("%s: want a port other than 0", quote(t))
		}
		return Target{TCP: ap.String()}, nil
	}
	u, err := url.Parse(t)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || hasControl(t) {
		return Target{}, invalid("%s: want tcp:IP:PORT or an http:// or https:// URL", quote(t))
	}
	return Target{URL: u.String()}, nil
}

// CheckTarget checks one target of the Internet check as a setting: its
// form (ParseCheckTarget), and an address that a check through the
// uplink can reach. Private addresses are allowed (a mesh whose "Net" is
// a local server names it); loopback, link-local, multicast and
// unspecified ones are not.
func CheckTarget(t string) error {
	tg, err := ParseCheckTarget(t)
	if err != nil {
		return err
	}
	host := tg.TCP
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if tg.URL != "" {
		u, _ := url.Parse(tg.URL)
		host = u.Hostname()
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
			return invalid("%s: a loopback, link-local, multicast or unspecified address is never reached through the uplink", quote(t))
		}
	}
	return nil
}

// CheckTargets checks a list of Internet check targets; "" entries and
// duplicates are refused, and there are at most MaxChecks.
func CheckTargets(ts []string) error {
	if len(ts) > MaxChecks {
		return &FieldError{Field: "check", Err: invalid("%d targets, at most %d", len(ts), MaxChecks)}
	}
	var errs []error
	for i, t := range ts {
		err := CheckTarget(t)
		if err == nil && slices.Index(ts, t) < i {
			err = invalid("%s is named twice", quote(t))
		}
		if err != nil {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("check[%d]", i), Err: err})
		}
	}
	return errors.Join(errs...)
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// quote quotes a value for an error: escaped, so it adds no lines to the
// console, and cut short.
func quote(v string) string {
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return strconv.Quote(v)
}

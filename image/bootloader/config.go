package bootloader

import (
	"fmt"
	"strings"
	"time"
)

// DefaultTimeout is how long the menus wait before booting the default
// entry: long enough to pick another entry, short because every boot of an
// unattended node pays it.
const DefaultTimeout = 1 * time.Second

// Entry is one boot menu entry. It mirrors builder/spec.MenuEntry, which
// image may not import (builder imports image, never the reverse).
type Entry struct {
	Label   string
	Append  string // kernel parameters after Config.Cmdline
	Default bool
}

// StandardMenu returns the issue-3 menu under title: a default entry,
// copy2ram, "always fresh" (byz.fresh: no persistence) and debug.
func StandardMenu(title string) []Entry {
	return []Entry{
		{Label: title, Default: true},
		{Label: title + " (copy to RAM)", Append: "copy2ram"},
		{Label: title + " (always fresh, no persistence)", Append: "byz.fresh"},
		{Label: title + " (debug)", Append: "debug"},
	}
}

// Config is what both bootloader configs are generated from.
type Config struct {
	Title   string // menu title; empty means "Byzantium"
	Cmdline string // kernel parameters for every entry
	MediaID string // written as byz.media=ID and searched for as byzantium/media-ID
	Entries []Entry
	// Timeout before the default entry boots; 0 means DefaultTimeout.
	// isolinux counts in tenths of a second, GRUB in seconds (rounded up).
	Timeout time.Duration
	// Locked keeps whoever is at the console (or on a serial-over-LAN
	// link) from changing what boots: the entries can be chosen, not
	// edited, and neither bootloader's command line opens. isolinux gets
	// ALLOWOPTIONS 0 (no Tab editing, no Esc to its prompt) and NOESCAPE 1
	// (no Shift or Alt to its prompt); GRUB gets an empty superusers list
	// (no editing, no command line: nobody can log in) with every entry
	// --unrestricted, so it still boots without a password. Someone who
	// can write the media can still edit the config files on it.
	Locked bool
}

// MediaParam is the kernel parameter that tells byz-init which media it
// booted from.
const MediaParam = "byz.media"

// check validates c and returns the index of the default entry. Labels and
// parameters are checked against a safe set of characters rather than
// quoted: a label reaches two config languages (syslinux's line-based one
// and GRUB's shell-like one) and the kernel command line, and refusing is
// the one escape that is right for all three.
func (c *Config) check() (int, error) {
	if len(c.Entries) == 0 {
		return 0, fmt.Errorf("%w: no menu entries", ErrBadMenu)
	}
	if !validID(c.MediaID) {
		return 0, fmt.Errorf("%w: media ID %q is not 1-64 lower-case hex digits", ErrBadMenu, c.MediaID)
	}
	if err := checkLabel(c.title()); err != nil {
		return 0, fmt.Errorf("menu title: %w", err)
	}
	if err := checkParams(c.Cmdline); err != nil {
		return 0, fmt.Errorf("command line: %w", err)
	}
	def := -1
	for i, e := range c.Entries {
		if err := checkLabel(e.Label); err != nil {
			return 0, fmt.Errorf("menu entry %d: %w", i+1, err)
		}
		if err := checkParams(e.Append); err != nil {
			return 0, fmt.Errorf("menu entry %d (%s): %w", i+1, e.Label, err)
		}
		if e.Default {
			if def >= 0 {
				return 0, fmt.Errorf("%w: entries %q and %q are both the default", ErrBadMenu, c.Entries[def].Label, e.Label)
			}
			def = i
		}
	}
	return max(def, 0), nil
}

func (c *Config) title() string {
	if c.Title == "" {
		return "Byzantium"
	}
	return c.Title
}

func (c *Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// cmdline is the full kernel command line of e.
func (c *Config) cmdline(e Entry) string {
	return strings.Join(strings.Fields(c.Cmdline+" "+e.Append+" "+MediaParam+"="+c.MediaID), " ")
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	return strings.IndexFunc(id, func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }) < 0
}

// labelChars are the characters a label may use besides letters and
// digits. Excluded, among others: quotes, backslash, $ ; { } | & < > and
// ` (GRUB syntax), # (comments in both), ^ (a syslinux menu hot key) and
// every control character (a newline would start a new directive).
const labelChars = " _.,:()+-/!?@%="

func checkLabel(l string) error {
	if l == "" || len(l) > 64 || strings.TrimSpace(l) != l {
		return fmt.Errorf("%w: label %q must be 1-64 characters without leading or trailing spaces", ErrBadMenu, l)
	}
	if i := strings.IndexFunc(l, func(r rune) bool { return !alnum(r) && !strings.ContainsRune(labelChars, r) }); i >= 0 {
		return fmt.Errorf("%w: label %q: character %q is not allowed (letters, digits and %q only)", ErrBadMenu, l, l[i], labelChars)
	}
	return nil
}

// paramChars are the characters kernel parameters may use besides letters
// and digits: enough for name=value, paths, lists and device names.
const paramChars = "_.,:+-/=@%~"

func checkParams(p string) error {
	// Only a plain space may separate parameters: a newline or tab would
	// end or bend a config line.
	if i := strings.IndexFunc(p, func(r rune) bool { return r != ' ' && !alnum(r) && !strings.ContainsRune(paramChars, r) }); i >= 0 {
		return fmt.Errorf("%w: kernel parameters %q: character %q is not allowed (letters, digits, spaces and %q only)", ErrBadMenu, p, p[i], paramChars)
	}
	return nil
}

func alnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

package initsys

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cmdline holds the boot parameters byz-init acts on. Porteus names keep
// their Porteus meaning; everything new is namespaced byz.*.
type Cmdline struct {
	// From is where to look for the media (from=/dev/sdb1, from=/path/to/iso).
	From string
	// Changes is where persistence lives (a dir, a .dat file, a device,
	// or EXIT:… to save only at shutdown).
	Changes string
	// Copy2RAM copies the modules into RAM before mounting them.
	Copy2RAM bool
	// Load and Noload are module name patterns from load= and noload=,
	// separated by ';' or ','.
	Load, Noload []string
	// NoRootCopy skips byzantium/rootcopy.
	NoRootCopy bool
	// BaseOnly loads only byzantium/base.
	BaseOnly bool
	// RAMSize sizes the tmpfs upper layer and the copy2ram tmpfs ("60%",
	// "2G"), as given.
	RAMSize string
	// Delay is how long the init keeps looking for the media (slow USB);
	// 0 means DefaultDelay.
	Delay time.Duration
	// Debug makes the init verbose (it also raises the kernel's log level).
	Debug bool
	// Byz holds every byz.* parameter without its prefix:
	// "byz.test=poweroff" gives Byz["test"] = "poweroff"; a flag without a
	// value maps to "".
	Byz map[string]string
}

// Test is byz.test=: what the boot test wants the init to do when ready
// ("poweroff").
func (c *Cmdline) Test() string { return c.Byz["test"] }

// ParseCmdline parses /proc/cmdline. Parameters it does not know are
// ignored (they are the kernel's). A malformed value is reported, and the
// rest of the line is still parsed, so the init can go on with defaults.
func ParseCmdline(s string) (Cmdline, error) {
	c := Cmdline{Byz: map[string]string{}}
	var errs []error
	for _, param := range splitCmdline(s) {
		key, value, _ := strings.Cut(param, "=")
		switch key {
		case "from":
			c.From = value
		case "changes":
			c.Changes = value
		case "copy2ram":
			c.Copy2RAM = true
		case "load":
			c.Load = append(c.Load, splitList(value)...)
		case "noload":
			c.Noload = append(c.Noload, splitList(value)...)
		case "norootcopy":
			c.NoRootCopy = true
		case "base_only":
			c.BaseOnly = true
		case "ramsize":
			c.RAMSize = value
		case "delay":
			secs, err := strconv.ParseUint(value, 10, 16)
			if err != nil {
				errs = append(errs, fmt.Errorf("delay=%q: want a number of seconds, e.g. delay=5", value))
				continue
			}
			c.Delay = time.Duration(secs) * time.Second
		case "debug":
			c.Debug = true
		default:
			if name, ok := strings.CutPrefix(key, "byz."); ok && name != "" {
				c.Byz[name] = value
			}
		}
	}
	return c, errors.Join(errs...)
}

// splitCmdline splits at spaces outside double quotes and drops the
// quotes, as the kernel does: `a="b c" d` is `a=b c` and `d`. Everything
// after a lone "--" belongs to init's argv and is not a parameter.
func splitCmdline(s string) []string {
	var (
		out    []string
		cur    strings.Builder
		quoted bool
		inWord bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				if cur.String() == "--" {
					return out
				}
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord && cur.String() != "--" {
		out = append(out, cur.String())
	}
	return out
}

func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' })
}

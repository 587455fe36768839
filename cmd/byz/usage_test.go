package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// commands lists every command under c, c included.
func commands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		out = append(out, commands(sub)...)
	}
	return out
}

// words are a command's words after "byz".
func words(c *cobra.Command) []string { return strings.Fields(c.CommandPath())[1:] }

// TestExitStatus walks every command and calls it wrongly in each way that
// does not depend on the command's own values: an unknown flag, a flag
// value of the wrong type, the wrong number of arguments, a group without
// a command or with an unknown one. Each is a usage error: status 2 and a
// message naming what was wrong. --help is status 0 everywhere, and byz
// --help documents the statuses.
func TestExitStatus(t *testing.T) {
	root := newRootCmd()
	if r := byz(t, nil, "--help"); r.code != 0 || !strings.Contains(r.stdout, "Exit status:") ||
		!strings.Contains(r.stdout, "2    usage") || !strings.Contains(r.stdout, "130") {
		t.Errorf("byz --help does not document the exit statuses:\n%s", r.stdout)
	}
	usage := func(why string, want string, args ...string) {
		t.Helper()
		r := byz(t, nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("byz %s (%s): exit %d, stderr %q; want exit 2 naming %q", strings.Join(args, " "), why, r.code, r.stderr, want)
		}
	}
	walked := 0
	for _, c := range commands(root) {
		walked++
		p := words(c)
		if r := byz(t, nil, append(p, "--help")...); r.code != 0 || r.stdout == "" {
			t.Errorf("byz %s --help: exit %d", strings.Join(p, " "), r.code)
		}
		usage("unknown flag", "--no-such-flag", append(p, "--no-such-flag")...)
		if c.HasSubCommands() {
			// A group that runs itself (byz node mesh shows the mesh)
			// takes no command; the others need one.
			if !c.Runnable() {
				usage("no command", "name a command", p...)
			}
			usage("unknown command", `unknown command "frobnicate"`, append(p, "frobnicate")...)
			continue
		}
		// A flag whose value cobra parses (a number, a duration, a
		// switch) given a word.
		var typed string
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			switch f.Value.Type() {
			case "int", "int64", "uint", "uint64", "duration", "bool", "float64":
				if typed == "" && !f.Hidden {
					typed = f.Name
				}
			}
		})
		if typed != "" {
			usage("bad flag value", "--"+typed, append(p, "--"+typed+"=notanumber")...)
		}
		// The first number of arguments the command refuses.
		if c.Args != nil {
			for n := range 5 {
				args := make([]string, n)
				for i := range args {
					args[i] = filepath.Join(os.TempDir(), "no-such-file")
				}
				if c.Args(c, args) != nil {
					usage("wrong arguments", strings.Join(p, " ")+": ", append(p, args...)...)
					break
				}
			}
		}
	}
	if walked < 30 {
		t.Errorf("walked %d commands; byz has more", walked)
	}
	usage("help topic", "no help topic", "help", "frobnicate")
}

// TestManPages: byz man writes a page for every command a user can call,
// each with its name, synopsis and description, and nothing else.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	if r := byz(t, nil, "man", dir); r.code != 0 {
		t.Fatalf("byz man: exit %d\n%s", r.code, r.stderr)
	}
	want := map[string]bool{}
	for _, c := range commands(newRootCmd()) {
		if !c.IsAvailableCommand() && c != c.Root() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		want[name] = true
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("no page for %q: %v", c.CommandPath(), err)
			continue
		}
		page := string(b)
		for _, s := range []string{".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", `.TH "BYZ" "1"`} {
			if !strings.Contains(page, s) {
				t.Errorf("%s has no %s", name, s)
			}
		}
		if c.HasExample() && !strings.Contains(page, ".SH EXAMPLE") {
			t.Errorf("%s has no examples", name)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !want[e.Name()] {
			t.Errorf("unexpected page %s", e.Name())
		}
	}
	if len(want) < 30 || len(ents) != len(want) {
		t.Errorf("%d pages for %d commands", len(ents), len(want))
	}
	// The same byz writes the same pages: no date in them.
	again := filepath.Join(t.TempDir(), "again")
	byz(t, nil, "man", again)
	for name := range want {
		a, _ := os.ReadFile(filepath.Join(dir, name))
		b, _ := os.ReadFile(filepath.Join(again, name))
		if string(a) != string(b) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}

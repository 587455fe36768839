package initsys

import "testing"

// FuzzParseCmdline: the command line is typed by people at a boot prompt;
// whatever it holds, parsing must not panic, and a line it accepts must
// parse to the same result again.
func FuzzParseCmdline(f *testing.F) {
	for _, s := range []string{
		"console=ttyS0 byz.media=0123456789abcdef",
		"from=/dev/sdb1 changes=/byzantium/changes/save.dat copy2ram ramsize=60% load=irc,pad noload=x",
		"base_only norootcopy delay=10 debug byz.test=poweroff",
		`quoted="a b" from=LABEL=BYZ`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseCmdline(s)
		if err != nil {
			return
		}
		b, err := ParseCmdline(s)
		if err != nil {
			t.Fatalf("second parse failed: %v", err)
		}
		if a.Test() != b.Test() {
			t.Fatalf("two parses of %q differ", s)
		}
	})
}

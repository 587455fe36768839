package initsys

import (
	"reflect"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Cmdline
		wantErr bool
	}{
		{in: "", want: Cmdline{Byz: map[string]string{}}},
		{
			in:   "BOOT_IMAGE=/boot/vmlinuz console=ttyS0 byz.test=poweroff debug\n",
			want: Cmdline{Debug: true, Byz: map[string]string{"test": "poweroff"}},
		},
		{
			in: `from=/dev/sdb1 changes=/byzantium/save.dat copy2ram load=kde;firefox noload=devel,docs norootcopy base_only ramsize=60% delay=5`,
			want: Cmdline{From: "/dev/sdb1", Changes: "/byzantium/save.dat", Copy2RAM: true, Load: []string{"kde", "firefox"},
				Noload: []string{"devel", "docs"}, NoRootCopy: true, BaseOnly: true, RAMSize: "60%", Delay: 5 * time.Second,
				Byz: map[string]string{}},
		},
		{in: `from="/mnt/my stick/byz.iso" changes=EXIT:/dev/sdb2`, want: Cmdline{From: "/mnt/my stick/byz.iso", Changes: "EXIT:/dev/sdb2", Byz: map[string]string{}}},
		{in: "load=a load=b", want: Cmdline{Load: []string{"a", "b"}, Byz: map[string]string{}}},
		{in: "byz.flag byz.x=1 byz.=ignored", want: Cmdline{Byz: map[string]string{"flag": "", "x": "1"}}},
		{in: "debug -- copy2ram", want: Cmdline{Debug: true, Byz: map[string]string{}}},
		{in: "delay=soon copy2ram", want: Cmdline{Copy2RAM: true, Byz: map[string]string{}}, wantErr: true},
		{in: "delay=-1", want: Cmdline{Byz: map[string]string{}}, wantErr: true},
	} {
		got, err := ParseCmdline(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseCmdline(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCmdline(%q) =\n %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func TestCmdlineTest(t *testing.T) {
	c, _ := ParseCmdline("byz.test=poweroff")
	if c.Test() != "poweroff" {
		t.Errorf("Test() = %q", c.Test())
	}
}

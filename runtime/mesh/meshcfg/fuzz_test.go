package meshcfg

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadImage: whatever the image's mesh file holds, ReadImage does not
// panic and returns settings that pass ValidateSettings (the file's, or
// the defaults with an error).
func FuzzReadImage(f *testing.F) {
	good, _ := DefaultImage().Marshal()
	f.Add(good)
	f.Add([]byte(`{"settings":{"protocol":"both","ssid":"x","channel":165,"share":"off","interfaces":["eth1"],"uplink":"eth0"},"check":["9.9.9.9:53"]}`))
	f.Add([]byte(`{"settings":{"protocol":"babel","ssid":"","channel":14,"share":"auto","key":"12345678"}}`))
	f.Add([]byte(`{"settings":{"interfaces":["` + "\x00" + `"]}}`))
	root := f.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/byzantium"), 0o755)
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := os.WriteFile(filepath.Join(root, ImageFile), body, 0o644); err != nil {
			t.Fatal(err)
		}
		im, err := ReadImage(root)
		if verr := im.Validate(); verr != nil {
			t.Fatalf("ReadImage(%q) = %+v (err %v), which is not valid: %v", body, im, err, verr)
		}
		if err == nil {
			if _, err := im.Marshal(); err != nil {
				t.Fatalf("Marshal of what ReadImage accepted: %v", err)
			}
		}
	})
}

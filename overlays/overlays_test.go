package overlays

import (
	"slices"
	"testing"
)

// TestLayoutStrings pins every path of the contract: media written by one
// release are booted by the next, and byzd, the CLI and scripts on the
// node read these paths, so none may drift.
func TestLayoutStrings(t *testing.T) {
	for _, tc := range []struct{ name, got, want string }{
		{"MediaRoot", MediaRoot, "byzantium"},
		{"FolderBase", FolderBase, "base"},
		{"FolderModules", FolderModules, "modules"},
		{"FolderOptional", FolderOptional, "optional"},
		{"ModuleExt", ModuleExt, ".xzm"},
		{"LoadList", LoadList, "byzantium/load"},
		{"ChangesDir", ChangesDir, "byzantium/changes"},
		{"DefaultSaveDat", DefaultSaveDat, "byzantium/changes/save.dat"},
		{"MediaMarkerPrefix", MediaMarkerPrefix, "byzantium/media-"},
		{"ManifestPath", ManifestPath, "byzantium/manifest.json"},
		{"RootcopyDir", RootcopyDir, "byzantium/rootcopy"},
		{"BootInfoPath", BootInfoPath, "byzantium/boot.json"},
		{"MarkerPath(ID)", MarkerPath("0123abcd"), "byzantium/media-0123abcd"},
		{"ModuleListPath", ModuleListPath, "etc/byz/modules.load"},
		{"DevNullPlaceholder", DevNullPlaceholder, "dev/null"},
		{"RunDir", RunDir, "run/byz"},
		{"ProbeDir", ProbeDir, "run/byz/probe"},
		{"MediaDir", MediaDir, "run/byz/media"},
		{"RAMDir", RAMDir, "run/byz/copy2ram"},
		{"LayersDir", LayersDir, "run/byz/layers"},
		{"RWDir", RWDir, "run/byz/rw"},
		{"UpperDir", UpperDir, "run/byz/rw/upper"},
		{"StoreDir", StoreDir, "run/byz/store"},
		{"ServicesDir", ServicesDir, "run/byz/services"},
		{"ReportDir", ReportDir, "run/byzantium"},
		{"ModulesJSON", ModulesJSON, "run/byzantium/modules.json"},
		{"PersistenceJSON", PersistenceJSON, "run/byzantium/persistence.json"},
		{"LastSaveJSON", LastSaveJSON, "run/byzantium/last-save.json"},
		{"FolderPath(optional)", FolderPath(FolderOptional), "byzantium/optional"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestFoldersOrder(t *testing.T) {
	want := []string{"base", "modules", "optional"}
	got := Folders()
	if !slices.Equal(got, want) {
		t.Fatalf("Folders() = %q, want %q", got, want)
	}
	got[0] = "changed"
	if Folders()[0] != "base" {
		t.Fatal("Folders() shares its slice with its callers")
	}
}

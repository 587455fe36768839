package builder

import (
	"reflect"
	"testing"

	"byzantium/builder/spec"
)

// TestSourceNames: the manifest names sources relative to the spec's
// folder, transports included, so a module is the same wherever it is
// built.
func TestSourceNames(t *testing.T) {
	b := &builder{spec: &spec.Spec{Dir: "/home/me/byz/examples"}}
	got := b.sourceNames([]string{"/home/me/byz/.cache/debs/a.deb", "npm:/home/me/byz/examples/apps/chat",
		"oci:/home/me/byz/layout:web", "docker-archive:/tmp/x.tar", "docker.io/library/nginx:1.27", "/home/me/byz/examples/rootfs"})
	want := []string{"../.cache/debs/a.deb", "npm:apps/chat", "oci:../layout:web", "docker-archive:../../../../tmp/x.tar",
		"docker.io/library/nginx:1.27", "rootfs"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sourceNames = %q\nwant %q", got, want)
	}
}

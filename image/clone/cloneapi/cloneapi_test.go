package cloneapi

import (
	"encoding/json"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRequestRoundTrip: a request survives JSON as byzd sends it and
// byz clone --request reads it, an empty module list (none) apart from a
// missing one (all).
func TestRequestRoundTrip(t *testing.T) {
	for _, req := range []Request{
		{Target: "/dev/sdb"},
		{Target: "/dev/sdb", Modules: []string{}},
		{Target: "copy.img", From: "out/usb.img", Modules: []string{"ngircd"}, SaveSize: 64 << 20, Encrypt: true,
			Passphrase: "new pass", KDFMemoryKiB: 65536, KDFTime: 2, State: "/tmp/upper", WithSecrets: true,
			Size: 1 << 30, Force: true, Plan: true},
		{Target: "/dev/sdc", WithState: true},
	} {
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(got, req) {
			t.Errorf("%s came back as %+v", b, got)
		}
	}
}

// TestRequestRefused: what Decode refuses is an ErrBadRequest (byz
// clone's exit status 2), with a message naming what is wrong.
func TestRequestRefused(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{``, "EOF"},
		{`{"target":"/dev/sdb","yes":true}`, `unknown field "yes"`},
		{`{"target":"/dev/sdb"} {"target":"/dev/sdc"}`, "more than one"},
		{`{"target":"/dev/sdb"} x`, "more than one"},
		{`{"target":"/dev/sdb"}}`, "after the JSON"},
		{`["/dev/sdb"]`, "cannot unmarshal"},
		{`{}`, "name a target"},
		{`{"target":"/dev/sdb","save_size":-1}`, "negative"},
		{`{"target":"/dev/sdb","encrypt":true}`, "need --save-size"},
		{`{"target":"/dev/sdb","passphrase":"p","save_size":1048576}`, "needs --encrypt"},
		{`{"target":"/dev/sdb","kdf_time":2}`, "need --encrypt"},
		{`{"target":"/dev/sdb","with_secrets":true}`, "needs --with-state"},
		{`{"target":"a.img","from":"b.img","with_state":true}`, "--state DIR"},
	} {
		_, err := Decode(strings.NewReader(tc.json))
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an ErrBadRequest saying %q", tc.json, err, tc.want)
		}
	}
	if err := BadRequest(errors.New("clone: x")); err.Error() != "clone: x" {
		t.Errorf("BadRequest changed the message: %q", err)
	}
}

// TestEventLines: the lines --progress=json prints, as docs/clone.md
// shows them and byzd reads them.
func TestEventLines(t *testing.T) {
	res := &Result{Target: "/dev/sdb", Size: 1 << 30, SourceID: "a", MediaID: "b", Bytes: 4096, Files: 3, Free: 100,
		SaveDat: true, Write: 1500 * time.Millisecond, Verify: 500 * time.Millisecond}
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Phase: "prepare"}, `{"phase":"prepare","bytes":0,"total":0,"rate":0,"eta_s":0}`},
		{Event{Phase: "write", Bytes: 10, Total: 20, Rate: 5, ETA: 2, File: "byzantium/x.xzm"},
			`{"phase":"write","bytes":10,"total":20,"rate":5,"eta_s":2,"file":"byzantium/x.xzm"}`},
		{Failed(errors.New("clone: target refused")), `{"phase":"error","bytes":0,"total":0,"rate":0,"eta_s":0,"error":"clone: target refused"}`},
		{Done(res), `{"phase":"done","bytes":4096,"total":4096,"rate":0,"eta_s":0,"target":"/dev/sdb","size":1073741824,` +
			`"source_id":"a","media_id":"b","disk_guid":"","part_guid":"","volume_id":"","files":3,"free":100,"save_dat_room":0,` +
			`"save_dat":true,"write_s":1.5,"verify_s":0.5}`},
	} {
		b, err := json.Marshal(tc.e)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s (%v)\nwant %s", b, err, tc.want)
		}
		var back Event
		if err := json.Unmarshal(b, &back); err != nil || back.Phase != tc.e.Phase || back.Bytes != tc.e.Bytes || back.Error != tc.e.Error {
			t.Errorf("%s read back as %+v (%v)", b, back, err)
		}
	}
}

// TestStandardLibraryOnly: byzd links this package, and must not link
// the image writers through it.
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "byzantium/image/clone/cloneapi" {
			t.Errorf("cloneapi depends on %s", dep)
		}
	}
}

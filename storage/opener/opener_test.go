package opener_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/opener"
)

func registry(t *testing.T) *opener.Registry {
	t.Helper()
	reg, err := opener.New(opener.Builtin()...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestValidateNamesTheField(t *testing.T) {
	reg := registry(t)
	iscsi := func(o map[string]string) opener.Spec {
		base := map[string]string{"portal": "127.0.0.1:3260", "tid": "1", "dir": "/var/lib/luns"}
		for k, v := range o {
			base[k] = v
		}
		return opener.Spec{Name: "san", Driver: "san-iscsi", Path: "iqn.2026-12.org.virtplane:t1", Options: base}
	}
	cases := []struct {
		name  string
		spec  opener.Spec
		field string // "" = valid
	}{
		{"file", opener.Spec{Name: "local", Driver: "file", Path: "/var/lib/vpt"}, ""},
		{"unknown driver", opener.Spec{Name: "x", Driver: "zfs", Path: "tank"}, "driver"},
		{"bad name", opener.Spec{Name: "-x", Driver: "file", Path: "/d"}, "name"},
		{"file without path", opener.Spec{Name: "x", Driver: "file"}, "path"},
		{"file relative path", opener.Spec{Name: "x", Driver: "file", Path: "var/lib"}, "path"},
		{"file dotdot", opener.Spec{Name: "x", Driver: "file", Path: "/var/../etc"}, "path"},
		{"file with options", opener.Spec{Name: "x", Driver: "file", Path: "/d", Options: map[string]string{"thin_pool": "a"}}, "options.thin_pool"},
		{"lvm", opener.Spec{Name: "vg", Driver: "lvm", Path: "vgdata", Options: map[string]string{"thin_pool": "tp0", "env": "LVM_SYSTEM_DIR=/etc/x", "no_activation": "true"}}, ""},
		{"lvm vg with a path", opener.Spec{Name: "vg", Driver: "lvm", Path: "/dev/vgdata"}, "path"},
		{"lvm vg option-like", opener.Spec{Name: "vg", Driver: "lvm", Path: "--force"}, "path"},
		{"lvm unknown option", opener.Spec{Name: "vg", Driver: "lvm", Path: "vg", Options: map[string]string{"stripes": "2"}}, "options.stripes"},
		{"lvm env not lvm's", opener.Spec{Name: "vg", Driver: "lvm", Path: "vg", Options: map[string]string{"env": "LD_PRELOAD=/tmp/x.so"}}, "options.env"},
		{"lvm flag not a bool", opener.Spec{Name: "vg", Driver: "lvm", Path: "vg", Options: map[string]string{"no_activation": "yes"}}, "options.no_activation"},
		{"lvm thin pool injected", opener.Spec{Name: "vg", Driver: "lvm", Path: "vg", Options: map[string]string{"thin_pool": "tp;rm"}}, "options.thin_pool"},
		{"san-lvm without device", opener.Spec{Name: "s", Driver: "san-lvm", Path: "vgsan"}, "options.device"},
		{"san-lvm", opener.Spec{Name: "s", Driver: "san-lvm", Path: "vgsan", Options: map[string]string{"device": "/dev/sdb"}}, ""},
		{"san-iscsi", iscsi(nil), ""},
		{"san-iscsi not an iqn", opener.Spec{Name: "san", Driver: "san-iscsi", Path: "target1", Options: iscsi(nil).Options}, "path"},
		{"san-iscsi portal with options", iscsi(map[string]string{"portal": "127.0.0.1:3260/iqn.x/1?opt=1"}), "options.portal"},
		{"san-iscsi portal with user", iscsi(map[string]string{"portal": "u@127.0.0.1:3260"}), "options.portal"},
		{"san-iscsi bad tid", iscsi(map[string]string{"tid": "0"}), "options.tid"},
		{"san-iscsi relative dir", iscsi(map[string]string{"dir": "luns"}), "options.dir"},
		{"san-iscsi without portal", opener.Spec{Name: "san", Driver: "san-iscsi", Path: "iqn.2026-12.org.virtplane:t1", Options: map[string]string{"tid": "1", "dir": "/d"}}, "options.portal"},
		{"ceph", opener.Spec{Name: "rbd", Driver: "ceph", Path: "rbd", Options: map[string]string{"monitors": "10.0.0.1:6789,10.0.0.2:3300", "user": "vpt"}}, ""},
		{"ceph pool with a slash", opener.Spec{Name: "rbd", Driver: "ceph", Path: "rbd/x"}, "path"},
		{"ceph monitors injected", opener.Spec{Name: "rbd", Driver: "ceph", Path: "rbd", Options: map[string]string{"monitors": "10.0.0.1:6789;conf=/tmp/x"}}, "options.monitors"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := reg.Validate(tc.spec)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", tc.spec, err)
				}
				return
			}
			var se *opener.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("Validate(%+v) = %v, want a *SpecError on %s", tc.spec, err, tc.field)
			}
			if se.Field != tc.field || !errors.Is(err, virtplane.ErrInvalidArgument) {
				t.Fatalf("Validate(%+v) = %q on field %q, want ErrInvalidArgument on %q", tc.spec, err, se.Field, tc.field)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	if _, err := opener.New(opener.Driver{Name: "x"}); !errors.Is(err, virtplane.ErrInvalidArgument) {
		t.Fatalf("a driver without Open: %v, want ErrInvalidArgument", err)
	}
	opened := ""
	mine := opener.Driver{Name: "file", Path: "directory", CheckPath: storage.ValidatePath, Open: func(_ context.Context, spec opener.Spec, _ storage.Executor) (storage.Pool, error) {
		opened = spec.Path
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "mine")
	}}
	reg, err := opener.New(append(opener.Builtin(), mine)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Open(context.Background(), opener.Spec{Name: "f", Driver: "file", Path: "/x"}, nil); !errors.Is(err, virtplane.ErrUnavailable) || opened != "/x" {
		t.Fatalf("a later driver of a name did not replace the built-in one: %v, opened %q", err, opened)
	}
	if !reg.Shared("ceph") || !reg.Shared("san-iscsi") || reg.Shared("lvm") || reg.Shared("file") || reg.Shared("nope") {
		t.Fatal("Shared: ceph and san-iscsi are shared, lvm and file are not, an unknown driver is not")
	}
	// Open validates first: the driver is never called with a bad spec.
	opened = ""
	if _, err := reg.Open(context.Background(), opener.Spec{Name: "f", Driver: "file", Path: "rel"}, nil); err == nil || opened != "" {
		t.Fatalf("Open of a bad spec: %v, driver called with %q", err, opened)
	}
}

func TestOpenFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pool")
	pool, err := registry(t).Open(context.Background(), opener.Spec{Name: "local", Driver: "file", Path: dir, Tags: map[string]string{"ssd": ""}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := pool.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "local" || info.Driver != "file" || info.Capacity == 0 {
		t.Fatalf("Info = %+v, want the file pool local with its file system's capacity", info)
	}
	if _, ok := info.Tags["ssd"]; !ok {
		t.Fatalf("the spec's tags are not the pool's: %v", info.Tags)
	}
}

package model_test

import (
	"errors"
	"testing"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
)

func names(refs []model.StorageRef) []string {
	out := []string{}
	for _, r := range refs {
		out = append(out, r.Name)
	}
	return out
}

func TestStorageCandidates(t *testing.T) {
	off := false
	c := model.Cluster{Name: "c", Storages: []model.StorageRef{
		{Name: "hdd", Driver: "file", Path: "/a", Tags: []string{"bulk"}},
		{Name: "ssd", Driver: "lvm", Path: "vg", Tags: []string{"ssd", "fast"}},
		{Name: "rbd", Driver: "ceph", Path: "rbd", Tags: []string{"ssd", "shared"}, Default: true},
		{Name: "old", Driver: "file", Path: "/b", Tags: []string{"ssd"}, Enabled: &off},
	}}
	cases := []struct {
		name  string
		store string
		tags  []string
		want  []string
		field string
		class error
	}{
		{"default first, then in order, disabled out", "", nil, []string{"rbd", "hdd", "ssd"}, "", nil},
		{"by tag", "", []string{"ssd"}, []string{"rbd", "ssd"}, "", nil},
		{"by two tags", "", []string{"ssd", "fast"}, []string{"ssd"}, "", nil},
		{"named", "hdd", nil, []string{"hdd"}, "", nil},
		{"named with its tag", "ssd", []string{"fast"}, []string{"ssd"}, "", nil},
		{"named without the tag", "hdd", []string{"ssd"}, nil, "storage_tags", virtplane.ErrInvalidArgument},
		{"named, missing", "nope", nil, nil, "storage", virtplane.ErrNotFound},
		{"named, disabled", "old", nil, nil, "storage", virtplane.ErrConflict},
		{"a tag no enabled storage has", "", []string{"nvme"}, nil, "storage_tags", virtplane.ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why, err := c.StorageCandidates(tc.store, tc.tags)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if g := names(got); len(g) != len(tc.want) || len(g) > 0 && g[0] != tc.want[0] || len(g) > 1 && g[1] != tc.want[1] || len(g) > 2 && g[2] != tc.want[2] {
					t.Fatalf("candidates %v, want %v", g, tc.want)
				}
				if len(got)+len(why) != len(c.Storages) && tc.store == "" {
					t.Fatalf("why %v does not account for every storage left out of %v", why, names(got))
				}
				return
			}
			var fe *model.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, tc.class) {
				t.Fatalf("err = %v, want %v on field %s", err, tc.class, tc.field)
			}
		})
	}
	if _, _, err := (model.Cluster{Name: "bare"}).StorageCandidates("", []string{"ssd"}); err == nil {
		t.Fatal("tags in a cluster without storages must be refused, not ignored")
	}
	if got, _, err := (model.Cluster{Name: "bare"}).StorageCandidates("", nil); err != nil || len(got) != 0 {
		t.Fatalf("a cluster without storages: %v, %v; want none (the node's own pool)", got, err)
	}
}

func TestValidateStorages(t *testing.T) {
	cases := []struct {
		name  string
		st    []model.StorageRef
		field string
	}{
		{"ok", []model.StorageRef{{Name: "a", Tags: []string{"ssd"}, Default: true}, {Name: "b"}}, ""},
		{"twice", []model.StorageRef{{Name: "a"}, {Name: "a"}}, "storages[1].name"},
		{"bad name", []model.StorageRef{{Name: "A_b"}}, "storages[0].name"},
		{"bad tag", []model.StorageRef{{Name: "a", Tags: []string{"no spaces"}}}, "storages[0].tags"},
		{"two defaults", []model.StorageRef{{Name: "a", Default: true}, {Name: "b", Default: true}}, "storages[1].default"},
		{"overcommit", []model.StorageRef{{Name: "a", DiskOvercommit: 0.5}}, "storages[0].disk_overcommit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := model.Cluster{Storages: tc.st}.ValidateStorages()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *model.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, virtplane.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument on %s", err, tc.field)
			}
		})
	}
}

package flow

import (
	"strings"
	"testing"

	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/storage"
)

func TestRoomCountsVirtualSizesAgainstOvercommit(t *testing.T) {
	const gib = int64(1) << 30
	info := storage.PoolInfo{Capacity: 100 * gib, Allocated: 150 * gib}
	if r := room(info, 1, gib); !strings.Contains(r, "150 GiB of 100 GiB taken") {
		t.Fatalf("150 GiB of virtual disks on 100 GiB without overcommit: %q, want a refusal saying so", r)
	}
	if r := room(info, 2, 50*gib); r != "" {
		t.Fatalf("overcommit 2 makes room for 200 GiB: %q", r)
	}
	if r := room(info, 2, 50*gib+1); r == "" {
		t.Fatal("one byte past the overcommitted capacity was taken")
	}
	if r := room(storage.PoolInfo{}, 1, 1<<50); r != "" {
		t.Fatalf("a pool that does not know its capacity takes any disk: %q", r)
	}
	c := model.Cluster{DiskOvercommit: 3}
	if o := overcommit(model.StorageRef{DiskOvercommit: 2}, c); o != 2 {
		t.Fatalf("the storage's overcommit wins: %v", o)
	}
	if o := overcommit(model.StorageRef{}, c); o != 3 {
		t.Fatalf("else the cluster's: %v", o)
	}
	if o := overcommit(model.StorageRef{}, model.Cluster{}); o != 1 {
		t.Fatalf("else none: %v", o)
	}
}

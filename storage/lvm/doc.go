// Package lvm is a storage pool on an LVM volume group: thick LVs (New) or
// thin LVs in a thin pool (NewThin, which adds O(1) linked clones and
// snapshots as thin snapshots). Volumes are raw block devices
// (/dev/<vg>/<lv>); the pool only touches LVs tagged "virtplane".
//
//	pool, err := lvm.NewThin(lvm.Config{Name: "fast", VG: "vg0", ThinPool: "tpool"})
//	root, err := pool.Clone(ctx, "debian-12", "vm-42-root", storage.CloneLinked)
//	err = pool.Activate(ctx, root.Name) // before QEMU opens /dev/vg0/vm-42-root
//
// Testing note: the kernel of the CI machine has no device-mapper, so the
// conformance suite runs against a real VG with lvm2 in metadata-only mode
// (global/activation=0, Config.NoActivation); thin pools, snapshots, full
// clones and activation are covered by golden files of the exact commands
// (testdata/*.golden, regenerate with `go test -run Golden -update`).
package lvm

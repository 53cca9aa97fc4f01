// Package file is a storage pool in a local directory: one qcow2 or raw file
// per volume, made and changed with qemu-img, linked clones as qcow2 overlays
// on a backing file, snapshots as qcow2 internal snapshots.
//
//	pool, err := file.New(file.Config{Name: "local", Dir: "/var/lib/virtplane/images"})
//	base, err := pool.Create(ctx, storage.VolumeSpec{Name: "debian-12", Size: 10 << 30})
//	root, err := pool.Clone(ctx, "debian-12", "vm-42-root", storage.CloneLinked)
//	// root.Attachment: {Kind: "file", Path: ".../vm-42-root.qcow2", Format: "qcow2"}
//
// Stat and list read the qcow2 header in Go instead of running qemu-img
// info, so listing a pool of thousands of volumes stays cheap.
package file

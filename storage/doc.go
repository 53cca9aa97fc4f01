// Package storage defines pools and volumes for VM disks: a small,
// context-first Pool interface (create, stat, list, delete) with optional
// capabilities (Resizer, Cloner, Snapshotter, Activator) found with As, a
// type assertion that also asks a pool standing for another one (a node
// agent's client) what the pool behind it has, the Attachment that tells vmm
// how to hand a volume to QEMU, the Executor through which drivers run
// commands (never a shell; a Streamer also streams their output), an image
// cache and importer for OS images, and CopyVolume/MoveVolume, which stream
// a volume between any two pools with qemu-img convert (storage migration).
//
// Drivers live in subpackages: file (qcow2/raw files), lvm, ceph (RBD, build
// tag ceph), san (iSCSI LUNs or LVM on a shared LUN) and fake; storagetest is
// the conformance suite they all pass.
//
//	pool, _ := file.New(file.Config{Name: "local", Dir: "/var/lib/virtplane/images"})
//	base, _ := storage.Importer{Exec: storage.LocalExecutor{}, Cache: cache}.
//		Import(ctx, pool, "debian-12", storage.Image{Key: "debian-12", Open: fetch}, nil)
//	if c, ok := storage.As[storage.Cloner](pool); ok {
//		root, err := c.Clone(ctx, base.Name, "vm-42-root", storage.CloneLinked)
//		... // root.Attachment goes to vmm
//	}
//
// Names of volumes and snapshots are checked by ValidateName; a bad name is
// an error wrapping virtplane.ErrInvalidArgument that quotes the value.
package storage

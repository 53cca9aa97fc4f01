// Package ceph is a storage pool on a Ceph RBD pool through go-ceph (cgo,
// librados/librbd). It builds only with the build tag `ceph` (add `pacific`
// for Debian 12's librados 16.2): `go test -tags 'ceph pacific' ./storage/ceph`.
// Without the tag the package is empty, so `go build ./...` needs no C library.
//
//	pool, err := ceph.New(ctx, ceph.Config{Name: "rbd", Pool: "rbd",
//		Conf: "/etc/ceph/ceph.conf", Monitors: []string{"10.0.0.1:3300"}, User: "libvirt"})
//	defer pool.Close()
//	root, err := pool.Clone(ctx, "debian-12", "vm-42-root", storage.CloneLinked)
//	// root.Attachment: {Kind: "rbd", Pool: "rbd", Image: "vm-42-root", Monitors: ..., User: "libvirt"}
//
// A linked clone is an RBD clone of a protected snapshot of the source named
// ".clone-<clone>"; snapshots whose name starts with '.' are the driver's own
// and are not listed (user snapshot names cannot start with '.').
package ceph

// Package smoke holds one test per real component of the test environment
// (hack/env, started by `make env`), each written with the Go library the
// project uses for that component: go-libvirt and libvirtxml for libvirtd,
// LXD's REST API over its unix socket, netlink for VxLAN between namespaces,
// an embedded GoBGP speaker against BIRD, go-ceph for RBD (build tag ceph),
// lvm2's commands, x/crypto/ssh, qemu-img with libiscsi, and database/sql on
// PostgreSQL (pgx) and SQLite (modernc). They prove the environment works
// before the drivers' own suites run against it.
package smoke

// Package virtplane is the root of the virtplane SDK: it holds the error
// classes that every package wraps, so that a caller can test any error from
// any layer with errors.Is and map it to a response once.
//
// virtplane runs virtualization infrastructure — clusters of KVM/QEMU (libvirt)
// and LXD nodes, their storage and networks — as Go packages that can be
// imported one at a time:
//
//	vmm/        hypervisor drivers (libvirt, LXD, fake) and their conformance suite
//	storage/    pools and volumes (file, LVM, Ceph RBD, SAN, fake)
//	network/    IPAM, host networking, VxLAN, BGP fabric, firewall, shaping
//	scheduler/  placement, evacuation and rebalancing plans
//	ha/         failure detection, fencing and evacuation
//	scripts/    script catalog, safe rendering and runners
//	daemon/     the reference daemon virtplaned
//
// Runnable examples, each run by a test that checks its output:
// examples/single-host (libvirt driver, file pool, IPAM and a bridge port
// driven directly: create, boot, delete), examples/ha-controller (the HA
// controller over simulated nodes), examples/ssh-script (a script run over
// SSH with a hidden variable), examples/scheduler-only, and examples/billing
// (selling a VM through the daemon's Go client, daemon/client).
//
// Errors are classified, not typed one by one:
//
//	if errors.Is(err, virtplane.ErrNotFound) { ... }
//
// A package adds context with fmt.Errorf("volume %q: %w", name, virtplane.ErrNotFound)
// or with [Errorf], which keeps the class and the message in one call.
package virtplane

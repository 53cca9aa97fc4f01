// Package lxd is the vmm.Driver for LXD system containers, spoken to over
// LXD's documented REST API on its unix socket with the standard library's
// HTTP client (github.com/canonical/lxd is AGPL-3.0 in the only version
// served to this project, so it is not imported).
//
// A spec becomes a container created from an image alias (Spec.Image) with
// limits.cpu and limits.memory, NICs as LXD nic devices (bridged to
// Spec.NICs[i].Bridge, or p2p with the host end named Tap) with
// limits.ingress/egress, and cloud-init data in user.user-data,
// user.meta-data and user.network-config. Long operations are awaited with
// /1.0/operations/{id}/wait under the caller's context.
//
// Capabilities: snapshots (stateless; stateful ones need CRIU and return
// ErrNotImplemented), resize, limits, exec through the guest agent
// interface, usage counters, lifecycle events (read from LXD's events
// WebSocket with a minimal built-in client). Not claimed: consoles
// (containers have no VNC/SPICE), rescue boot (no boot loader) and live
// migration. Extra disks in a spec are refused: a container's root file
// system comes from its image.
//
// Example:
//
//	d, err := lxd.New(lxd.Config{Socket: "/var/lib/lxd/unix.socket", Pool: "default"})
//	if err != nil {
//		return err
//	}
//	_, err = d.Create(ctx, vmm.Spec{Name: "web-1", Image: "debian/12", VCPUs: 2, MemoryMiB: 1024})
package lxd

// Package vmm is virtplane's hypervisor abstraction: a small, context-first
// Driver interface for the life cycle of virtual machines and containers, the
// Spec that describes one, and optional capability interfaces (Snapshotter,
// Resizer, DiskResizer, Limiter, Rescuer, Consoler, Migrator,
// MigrationAborter, GuestAgent, EventWatcher,
// UsageReporter) that a driver implements when its hypervisor can do the
// job. Callers detect a capability with As (vmm.As[vmm.Migrator](d)): a
// type assertion, the way io/fs detects fs.ReadDirFS, that also asks a
// driver standing for another one (a node agent's client, a wrapper) what
// the driver behind it has (CapabilityReporter).
//
// The drivers live in subpackages: vmm/libvirt (QEMU/KVM through libvirtd),
// vmm/lxd (LXD containers), vmm/fake (in memory, for tests). vmm/vmmtest is the
// conformance suite all of them pass; vmm/cloudinit writes NoCloud seed images.
//
// Every error a driver returns for a condition a caller may handle wraps one
// of the virtplane error classes (virtplane.ErrNotFound, ErrConflict,
// ErrInvalidArgument, ErrNotImplemented, ...).
//
// Example:
//
//	spec := vmm.Spec{
//		Name: "web-1", VCPUs: 2, MemoryMiB: 2048,
//		Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: "/var/lib/vm/web-1.qcow2", Format: "qcow2"}}},
//		NICs:  []vmm.NIC{{Bridge: "br0", MAC: "52:54:00:12:34:56"}},
//	}
//	if _, err := d.Create(ctx, spec); err != nil {
//		return err
//	}
//	if err := d.Start(ctx, spec.Name); err != nil {
//		return err
//	}
//	if s, ok := vmm.As[vmm.Snapshotter](d); ok {
//		err = s.CreateSnapshot(ctx, spec.Name, vmm.SnapshotSpec{Name: "before-upgrade"})
//	}
package vmm

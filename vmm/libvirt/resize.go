package libvirt

import (
	"context"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// editInactive reads the persistent definition, lets edit change it and
// defines the result.
func (d *Driver) editInactive(ctx context.Context, dom golibvirt.Domain, edit func(*libvirtxml.Domain, *meta) error) error {
	x, err := d.domainXML(ctx, dom, true)
	if err != nil {
		return err
	}
	_, def, m, err := parse(x)
	if err != nil {
		return err
	}
	if err := edit(def, &m); err != nil {
		return err
	}
	md, err := encodeMeta(m)
	if err != nil {
		return err
	}
	def.Metadata = md
	nx, err := def.Marshal()
	if err != nil {
		return err
	}
	return d.define(ctx, nx)
}

// Resize changes the persistent CPU count and memory; a running domain
// picks them up at its next boot (live resize would need hot-plug limits
// set at boot: maxvcpus and maxMemory, which the driver does not reserve).
func (d *Driver) Resize(ctx context.Context, name string, r vmm.Resources) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	probe := vmm.Spec{Name: name, VCPUs: r.VCPUs, MemoryMiB: r.MemoryMiB}
	if err := probe.Validate(); err != nil {
		return err
	}
	return d.editInactive(ctx, dom, func(def *libvirtxml.Domain, _ *meta) error {
		def.VCPU = &libvirtxml.DomainVCPU{Value: uint(r.VCPUs)}
		def.Memory = &libvirtxml.DomainMemory{Value: uint(r.MemoryMiB), Unit: "MiB"}
		def.CurrentMemory = &libvirtxml.DomainCurrentMemory{Value: uint(r.MemoryMiB), Unit: "MiB"}
		return nil
	})
}

// ResizeDisk grows a disk of a running domain with virDomainBlockResize:
// QEMU grows the image file (or RBD image) it holds open, or takes up the
// new size of a block device, and the guest sees the new capacity at once.
// The size is rounded up to 512 bytes (QEMU's granularity); libvirt would
// shrink as readily as grow, so a smaller size is refused here.
func (d *Driver) ResizeDisk(ctx context.Context, name, target string, size int64) error {
	if size <= 0 {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %q of vm %q: size %d must be positive", target, name, size)
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	vm, err := d.get(ctx, dom)
	if err != nil {
		return err
	}
	// The target is looked up in the definition rather than handed to
	// libvirt, which would also accept a path and report an unknown disk as
	// a generic invalid argument.
	found := false
	for _, dk := range vm.Spec.Disks {
		found = found || dk.Target == target
	}
	if !found {
		return virtplane.Errorf(virtplane.ErrNotFound, "disk %q of vm %q", target, name)
	}
	if vm.State != vmm.StateRunning && vm.State != vmm.StatePaused {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot resize a disk", name, vm.State)
	}
	size = (size + 511) &^ 511
	capacity, err := call(ctx, d, "block info of "+name, true, func(lv *golibvirt.Libvirt) (uint64, error) {
		_, c, _, err := lv.DomainGetBlockInfo(dom, target, 0)
		return c, err
	})
	if err != nil {
		return err
	}
	switch {
	case uint64(size) < capacity:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %q of vm %q: %d bytes is below the current %d: disks only grow", target, name, size, capacity)
	case uint64(size) == capacity:
		return nil
	}
	return do(ctx, d, "resize disk "+target+" of "+name, true, func(lv *golibvirt.Libvirt) error {
		return lv.DomainBlockResize(dom, target, uint64(size), golibvirt.DomainBlockResizeBytes)
	})
}

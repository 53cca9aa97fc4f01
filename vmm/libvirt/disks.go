package libvirt

import (
	"context"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// detachWait bounds how long DetachDisk waits for a running guest to
// release a disk. Unplugging a virtio disk is a request the guest's kernel
// answers (ACPI or PCIe hotplug eject); libvirt itself waits 5 s and then
// reports success while the removal is still pending.
const detachWait = 20 * time.Second

// AttachDisk adds a disk with virDomainAttachDeviceFlags: to the persistent
// definition, and to a running domain at the same time (libvirt applies the
// live change first and keeps the definition as it was when that fails).
func (d *Driver) AttachDisk(ctx context.Context, name string, disk vmm.Disk) error {
	if err := disk.Validate("disk"); err != nil {
		return err
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	def, _, err := d.definition(ctx, dom)
	if err != nil {
		return err
	}
	if findDisk(def, disk.Target) != nil {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "disk %q of vm %q", disk.Target, name)
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	live := st == vmm.StateRunning || st == vmm.StatePaused
	if live && disk.CDROM {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %q of vm %q: a cdrom drive cannot be hotplugged", disk.Target, name)
	}
	dd, err := renderDisk(disk, vmm.DiskLimits{})
	if err != nil {
		return err
	}
	x, err := dd.Marshal()
	if err != nil {
		return err
	}
	flags := golibvirt.DomainDeviceModifyConfig
	if live {
		flags |= golibvirt.DomainDeviceModifyLive
	}
	return do(ctx, d, "attach disk "+disk.Target+" to "+name, false, func(lv *golibvirt.Libvirt) error {
		return lv.DomainAttachDeviceFlags(dom, x, uint32(flags))
	})
}

// DetachDisk removes a disk: from a running domain first, waiting until
// the guest released it, then from the definition. A guest that keeps the
// disk leaves the definition untouched, so that what the driver reports
// and what runs stay the same disk set.
func (d *Driver) DetachDisk(ctx context.Context, name, target string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	def, m, err := d.definition(ctx, dom)
	if err != nil {
		return err
	}
	dd := findDisk(def, target)
	// The cloud-init seed and the rescue drive are the driver's own.
	if dd == nil || isDriverDisk(*dd, m) {
		return virtplane.Errorf(virtplane.ErrNotFound, "disk %q of vm %q", target, name)
	}
	x, err := dd.Marshal()
	if err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	if st == vmm.StateRunning || st == vmm.StatePaused {
		if err := d.detachLive(ctx, dom, target); err != nil {
			return err
		}
	}
	return do(ctx, d, "detach disk "+target+" from the definition of "+name, false, func(lv *golibvirt.Libvirt) error {
		return lv.DomainDetachDeviceFlags(dom, x, uint32(golibvirt.DomainDeviceModifyConfig))
	})
}

// detachLive unplugs a disk of the running domain and waits until the
// live definition no longer has it.
func (d *Driver) detachLive(ctx context.Context, dom golibvirt.Domain, target string) error {
	lx, err := d.domainXML(ctx, dom, false)
	if err != nil {
		return err
	}
	var live libvirtxml.Domain
	if err := live.Unmarshal(lx); err != nil {
		return err
	}
	ld := findDisk(&live, target)
	if ld == nil {
		return nil // unplugged already (an earlier detach the guest answered late)
	}
	x, err := ld.Marshal()
	if err != nil {
		return err
	}
	if err := do(ctx, d, "unplug disk "+target+" of "+dom.Name, false, func(lv *golibvirt.Libvirt) error {
		return lv.DomainDetachDeviceFlags(dom, x, uint32(golibvirt.DomainDeviceModifyLive))
	}); err != nil {
		return err
	}
	deadline := time.Now().Add(detachWait)
	for {
		lx, err := d.domainXML(ctx, dom, false)
		if err != nil {
			return err
		}
		var now libvirtxml.Domain
		if err := now.Unmarshal(lx); err != nil {
			return err
		}
		if findDisk(&now, target) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return virtplane.Errorf(virtplane.ErrTimeout, "vm %q: the guest did not release disk %q within %s; the disk stays attached (stop the VM to detach it)", dom.Name, target, detachWait)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return virtplane.Errorf(virtplane.ErrCanceled, "vm %q: waiting for the guest to release disk %q: %v", dom.Name, target, ctx.Err())
		case <-t.C:
		}
	}
}

// definition is the domain's persistent definition with the driver's metadata.
func (d *Driver) definition(ctx context.Context, dom golibvirt.Domain) (*libvirtxml.Domain, meta, error) {
	x, err := d.domainXML(ctx, dom, true)
	if err != nil {
		return nil, meta{}, err
	}
	_, def, m, err := parse(x)
	return def, m, err
}

// findDisk returns the disk at target of a domain, or nil.
func findDisk(dom *libvirtxml.Domain, target string) *libvirtxml.DomainDisk {
	if dom.Devices == nil {
		return nil
	}
	for i, dd := range dom.Devices.Disks {
		if dd.Target != nil && dd.Target.Dev == target {
			return &dom.Devices.Disks[i]
		}
	}
	return nil
}

// isDriverDisk says whether a disk is one the driver added itself: the
// cloud-init seed or the rescue drive.
func isDriverDisk(dd libvirtxml.DomainDisk, m meta) bool {
	if m.Seed != "" && dd.Source != nil && dd.Source.File != nil && dd.Source.File.File == m.Seed {
		return true
	}
	return m.Rescue != nil && dd.Target != nil && dd.Target.Dev == m.Rescue.CDROM
}

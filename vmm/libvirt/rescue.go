package libvirt

import (
	"context"

	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/vmm"
)

// EnterRescue powers the domain off, boots it from the rescue kernel or ISO
// with its disks attached, and remembers how it booted before.
func (d *Driver) EnterRescue(ctx context.Context, name string, r vmm.RescueSpec) error {
	if err := vmm.CheckRescue(r); err != nil {
		return err
	}
	return d.rescueSwitch(ctx, name, func(def *libvirtxml.Domain, m *meta) error {
		if m.Rescue != nil {
			return virtplane.Errorf(virtplane.ErrConflict, "vm %q is in rescue mode already", name)
		}
		saved := &rescue{Kernel: def.OS.Kernel, Initrd: def.OS.Initrd, Cmdline: def.OS.Cmdline}
		for _, b := range def.OS.BootDevices {
			saved.Boot = append(saved.Boot, b.Dev)
		}
		def.OS.BootDevices = nil
		def.OS.Kernel, def.OS.Initrd, def.OS.Cmdline = r.Kernel, r.Initrd, r.Cmdline
		if r.ISO != "" {
			used := vmm.Spec{}
			for _, dd := range def.Devices.Disks {
				if dd.Target != nil {
					used.Disks = append(used.Disks, vmm.Disk{Target: dd.Target.Dev})
				}
			}
			t := seedTarget(used)
			if t == "" {
				return virtplane.Errorf(virtplane.ErrConflict, "vm %q has no free IDE slot for the rescue ISO", name)
			}
			dd, _ := renderDisk(vmm.Disk{Target: t, CDROM: true, Source: vmm.DiskSource{Kind: "file", Path: r.ISO, Format: "raw"}}, vmm.DiskLimits{})
			def.Devices.Disks = append(def.Devices.Disks, dd)
			def.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "cdrom"}}
			saved.CDROM = t
		}
		m.Rescue = saved
		return nil
	})
}

// ExitRescue powers the domain off and boots it the way it booted before.
func (d *Driver) ExitRescue(ctx context.Context, name string) error {
	return d.rescueSwitch(ctx, name, func(def *libvirtxml.Domain, m *meta) error {
		saved := m.Rescue
		if saved == nil {
			return virtplane.Errorf(virtplane.ErrConflict, "vm %q is not in rescue mode", name)
		}
		def.OS.Kernel, def.OS.Initrd, def.OS.Cmdline = saved.Kernel, saved.Initrd, saved.Cmdline
		def.OS.BootDevices = nil
		for _, b := range saved.Boot {
			def.OS.BootDevices = append(def.OS.BootDevices, libvirtxml.DomainBootDevice{Dev: b})
		}
		if saved.CDROM != "" {
			kept := def.Devices.Disks[:0]
			for _, dd := range def.Devices.Disks {
				if dd.Target == nil || dd.Target.Dev != saved.CDROM {
					kept = append(kept, dd)
				}
			}
			def.Devices.Disks = kept
		}
		m.Rescue = nil
		return nil
	})
}

// rescueSwitch stops the domain, redefines it with edit and starts it; on a
// failure it puts the old definition (and run state) back.
func (d *Driver) rescueSwitch(ctx context.Context, name string, edit func(*libvirtxml.Domain, *meta) error) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	old, err := d.domainXML(ctx, dom, true)
	if err != nil {
		return err
	}
	_, def, m, err := parse(old)
	if err != nil {
		return err
	}
	if err := edit(def, &m); err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	r := revert.New()
	defer r.Fail()
	undo := context.WithoutCancel(ctx)
	if st != vmm.StateStopped {
		if err := d.Stop(ctx, name); err != nil {
			return err
		}
		r.Add(func() { _ = d.Start(undo, name) })
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
	if err := d.define(ctx, nx); err != nil {
		return err
	}
	r.Add(func() { _ = d.define(undo, old) })
	if err := d.Start(ctx, name); err != nil {
		return err
	}
	r.Success()
	return nil
}

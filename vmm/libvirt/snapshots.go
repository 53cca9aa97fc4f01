package libvirt

import (
	"context"
	"fmt"
	"sort"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// CreateSnapshot takes an internal (qcow2) snapshot. With Memory it records
// the memory of a running domain; without, it snapshots a stopped domain's
// disks. A disk-only snapshot of a running domain would need external
// overlay files and returns ErrNotImplemented.
func (d *Driver) CreateSnapshot(ctx context.Context, name string, spec vmm.SnapshotSpec) error {
	if err := vmm.CheckName("snapshot name", spec.Name); err != nil {
		return err
	}
	if len(spec.Description) > 1024 {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "snapshot description: %d bytes, want at most 1024", len(spec.Description))
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	live := st == vmm.StateRunning || st == vmm.StatePaused
	switch {
	case spec.Memory && !live:
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: a memory snapshot needs a running machine", name, st)
	case !spec.Memory && live:
		return virtplane.Errorf(virtplane.ErrNotImplemented, "vm %q is %s: disk-only snapshots of a running libvirt domain need external snapshots, which the driver does not manage; stop it or include memory", name, st)
	}
	if _, err := d.snapshot(ctx, dom, spec.Name); err == nil {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "snapshot %q of vm %q", spec.Name, name)
	}
	sx := libvirtxml.DomainSnapshot{Name: spec.Name, Description: spec.Description}
	x, err := sx.Marshal()
	if err != nil {
		return err
	}
	return do(ctx, d, "snapshot "+name, false, func(lv *golibvirt.Libvirt) error {
		_, err := lv.DomainSnapshotCreateXML(dom, x, 0)
		return err
	})
}

func (d *Driver) snapshot(ctx context.Context, dom golibvirt.Domain, snap string) (golibvirt.DomainSnapshot, error) {
	if !vmm.ValidName(snap) {
		return golibvirt.DomainSnapshot{}, virtplane.Errorf(virtplane.ErrNotFound, "snapshot %q", snap)
	}
	return call(ctx, d, "lookup snapshot "+snap, true, func(lv *golibvirt.Libvirt) (golibvirt.DomainSnapshot, error) {
		return lv.DomainSnapshotLookupByName(dom, snap, 0)
	})
}

// ListSnapshots returns the snapshots oldest first.
func (d *Driver) ListSnapshots(ctx context.Context, name string) ([]vmm.Snapshot, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	snaps, err := call(ctx, d, "list snapshots of "+name, true, func(lv *golibvirt.Libvirt) ([]golibvirt.DomainSnapshot, error) {
		s, _, err := lv.DomainListAllSnapshots(dom, 1, 0)
		return s, err
	})
	if err != nil {
		return nil, err
	}
	type entry struct {
		vmm.Snapshot
		parent string
	}
	var list []entry
	for _, s := range snaps {
		x, err := call(ctx, d, "snapshot xml", true, func(lv *golibvirt.Libvirt) (string, error) { return lv.DomainSnapshotGetXMLDesc(s, 0) })
		if err != nil {
			return nil, err
		}
		var sx libvirtxml.DomainSnapshot
		if err := sx.Unmarshal(x); err != nil {
			return nil, err
		}
		e := entry{Snapshot: vmm.Snapshot{Name: sx.Name}}
		if sx.Parent != nil {
			e.parent = sx.Parent.Name
		}
		if sec, err := parseInt(sx.CreationTime); err == nil {
			e.Created = time.Unix(sec, 0)
		}
		switch sx.State {
		case "running", "paused":
			e.Memory = true
			e.State = vmm.State(sx.State)
		default:
			e.State = vmm.StateStopped
		}
		list = append(list, e)
	}
	depth := func(e entry) int {
		n := 0
		for p := e.parent; p != "" && n < len(list); n++ {
			next := ""
			for _, o := range list {
				if o.Name == p {
					next = o.parent
				}
			}
			p = next
		}
		return n
	}
	sort.SliceStable(list, func(i, j int) bool {
		if !list[i].Created.Equal(list[j].Created) {
			return list[i].Created.Before(list[j].Created)
		}
		return depth(list[i]) < depth(list[j])
	})
	out := make([]vmm.Snapshot, len(list))
	for i, e := range list {
		out[i] = e.Snapshot
	}
	return out, nil
}

func parseInt(s string) (int64, error) {
	var v int64
	_, err := fmt.Sscan(s, &v)
	return v, err
}

// RevertSnapshot returns the domain to the snapshot: definition, disks and,
// for memory snapshots, the running guest.
func (d *Driver) RevertSnapshot(ctx context.Context, name, snap string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	s, err := d.snapshot(ctx, dom, snap)
	if err != nil {
		return err
	}
	return do(ctx, d, "revert "+name+" to "+snap, false, func(lv *golibvirt.Libvirt) error {
		return lv.DomainRevertToSnapshot(s, uint32(golibvirt.DomainSnapshotRevertForce))
	})
}

// DeleteSnapshot deletes a snapshot and its data in the qcow2 images.
func (d *Driver) DeleteSnapshot(ctx context.Context, name, snap string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	s, err := d.snapshot(ctx, dom, snap)
	if err != nil {
		return err
	}
	return do(ctx, d, "delete snapshot "+snap, false, func(lv *golibvirt.Libvirt) error { return lv.DomainSnapshotDelete(s, 0) })
}

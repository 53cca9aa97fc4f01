package libvirt

import (
	"context"
	"errors"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// copyPoll is how often CopyDisk looks at its block job.
const copyPoll = 100 * time.Millisecond

// CopyDisk moves a running domain's disk with a block copy job
// (virDomainBlockCopy into the existing, empty dest, the whole backing
// chain flattened into it), then pivots once the mirror is in step: from
// then on QEMU reads and writes dest. The persistent definition is made to
// name dest too, so that the next boot uses the moved disk. Any failure
// before the pivot cancels the job; the domain never left its old source.
func (d *Driver) CopyDisk(ctx context.Context, name, target string, dest vmm.DiskSource, progress func(done, total int64)) error {
	if err := dest.Validate("dest"); err != nil {
		return err
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	if st != vmm.StateRunning && st != vmm.StatePaused {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: a disk copy needs a running machine", name, st)
	}
	def, m, err := d.definition(ctx, dom)
	if err != nil {
		return err
	}
	if dd := findDisk(def, target); dd == nil || isDriverDisk(*dd, m) {
		return virtplane.Errorf(virtplane.ErrNotFound, "disk %q of vm %q", target, name)
	}
	dd, err := renderDisk(vmm.Disk{Target: target, Source: dest}, vmm.DiskLimits{})
	if err != nil {
		return err
	}
	x, err := dd.Marshal()
	if err != nil {
		return err
	}
	if err := do(ctx, d, "block copy of "+target+" of "+name, false, func(lv *golibvirt.Libvirt) error {
		// A persistent domain's copy job cannot be made to survive a
		// libvirtd restart (the transient job flag): a restart abandons it,
		// and the domain is still on its source, which a caller's undo
		// expects.
		return lv.DomainBlockCopy(dom, target, x, nil, golibvirt.DomainBlockCopyReuseExt|golibvirt.DomainBlockCopyTransientJob)
	}); err != nil {
		return err
	}
	if err := d.pivotWhenReady(ctx, dom, target, progress); err != nil {
		// Cancelled, not pivoted: the domain stays on its source. The
		// cancel gets a context of its own: ctx may be what ended.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = d.abortJob(actx, dom, target, 0)
		return err
	}
	// The definition for the next boot: libvirt pivots the running domain;
	// the persistent one is set here whether or not libvirt did it too.
	return d.editInactive(ctx, dom, func(def *libvirtxml.Domain, _ *meta) error {
		if old := findDisk(def, target); old != nil {
			old.Source, old.Driver = dd.Source, dd.Driver
		}
		return nil
	})
}

// pivotWhenReady waits until the copy job of target has mirrored
// everything and switches the domain over.
func (d *Driver) pivotWhenReady(ctx context.Context, dom golibvirt.Domain, target string, progress func(done, total int64)) error {
	t := time.NewTicker(copyPoll)
	defer t.Stop()
	for {
		found, cur, end, err := d.blockJob(ctx, dom, target)
		if err != nil {
			return err
		}
		if found == 0 {
			return virtplane.Errorf(virtplane.ErrUnavailable, "vm %q: the copy job of disk %q ended before the switch: the hypervisor failed it (a destination of another size than the disk, or one it cannot open); the disk stays on its source", dom.Name, target)
		}
		if progress != nil {
			progress(int64(cur), int64(end))
		}
		if end > 0 && cur == end {
			err := d.abortJob(ctx, dom, target, golibvirt.DomainBlockJobAbortPivot)
			if err == nil {
				return nil
			}
			// In step, but QEMU has not said READY yet: look again.
			if !strings.Contains(err.Error(), "not ready") && !strings.Contains(err.Error(), "not in ready") && !strings.Contains(err.Error(), "not yet ready") {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return virtplane.Errorf(virtplane.ErrCanceled, "vm %q: copy of disk %q: %v", dom.Name, target, ctx.Err())
		case <-t.C:
		}
	}
}

func (d *Driver) blockJob(ctx context.Context, dom golibvirt.Domain, target string) (found int32, cur, end uint64, err error) {
	err = do(ctx, d, "block job of "+target+" of "+dom.Name, true, func(lv *golibvirt.Libvirt) error {
		var e error
		found, _, _, cur, end, e = lv.DomainGetBlockJobInfo(dom, target, 0)
		return e
	})
	return found, cur, end, err
}

func (d *Driver) abortJob(ctx context.Context, dom golibvirt.Domain, target string, flags golibvirt.DomainBlockJobAbortFlags) error {
	return do(ctx, d, "end the block job of "+target+" of "+dom.Name, false, func(lv *golibvirt.Libvirt) error {
		return lv.DomainBlockJobAbort(dom, target, flags)
	})
}

// AbortDiskCopy cancels the copy job of a disk, if one runs, without
// pivoting; the domain stays on its source.
func (d *Driver) AbortDiskCopy(ctx context.Context, name, target string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil || st != vmm.StateRunning && st != vmm.StatePaused {
		return err // a stopped domain has no job
	}
	found, _, _, err := d.blockJob(ctx, dom, target)
	if err != nil || found == 0 {
		if errors.Is(err, virtplane.ErrInvalidArgument) {
			return nil // no such disk: no job
		}
		return err
	}
	return d.abortJob(ctx, dom, target, 0)
}

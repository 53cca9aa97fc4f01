package libvirt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// Migrate moves a running domain to the libvirtd at target.URI (a libvirt
// URI that the source libvirtd can open: peer-to-peer migration), polling
// the job for progress. Cancelling ctx aborts the migration. Disks listed
// in target.Disks are copied while the domain runs (QEMU mirrors them over
// NBD into the target sources, backing chains flattened); the domain is
// defined on the target with those sources.
func (d *Driver) Migrate(ctx context.Context, name string, target vmm.MigrationTarget, progress func(vmm.MigrationProgress)) error {
	if target.URI == "" || strings.ContainsAny(target.URI, "\x00\n\r") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "migration target uri %q", target.URI)
	}

	params := []golibvirt.TypedParam{typed("destination_name", *golibvirt.NewTypedParamValueString(name))}
	if target.Address != "" {
		ip := net.ParseIP(target.Address)
		if ip == nil {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "migration target address %q: want an IP address", target.Address)
		}
		host := ip.String()
		if ip.To4() == nil {
			host = "[" + host + "]"
		}
		// No port: the target libvirtd picks one from its migration range.
		params = append(params,
			typed("migrate_uri", *golibvirt.NewTypedParamValueString("tcp://" + host)),
			typed("listen_address", *golibvirt.NewTypedParamValueString(ip.String())))
	}
	if target.BandwidthMiBs > 0 {
		params = append(params, typed("bandwidth", *golibvirt.NewTypedParamValueUllong(target.BandwidthMiBs)))
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	if st, err := d.state(ctx, dom); err != nil {
		return err
	} else if st != vmm.StateRunning {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot migrate", name, st)
	}
	flags := golibvirt.MigrateLive | golibvirt.MigratePeer2peer | golibvirt.MigratePersistDest | golibvirt.MigrateUndefineSource
	if target.AllowUnsafe {
		flags |= golibvirt.MigrateUnsafe
	}
	xml, rewritten, err := d.destinationXML(ctx, dom, name, target.Disks)
	if err != nil {
		return err
	}
	if rewritten {
		params = append(params, typed("destination_xml", *golibvirt.NewTypedParamValueString(xml)))
	}
	if len(target.Disks) > 0 {
		// QEMU mirrors the listed disks into the target's volumes over NBD
		// while memory is copied; the others (the cloud-init seed) must be
		// where the domain says on the target too.
		flags |= golibvirt.MigrateNonSharedDisk
		for _, t := range slices.Sorted(maps.Keys(target.Disks)) {
			params = append(params, typed("migrate_disks", *golibvirt.NewTypedParamValueString(t)))
		}
	}
	lv, err := d.conn(ctx)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := lv.DomainMigratePerform3Params(dom, golibvirt.OptString{target.URI}, params, nil, flags)
		done <- err
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return classify("migrate "+name, err, lv)
		case <-ctx.Done():
			_ = do(context.WithoutCancel(ctx), d, "abort migration of "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainAbortJob(dom) })
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return virtplane.Errorf(virtplane.ErrTimeout, "migration of %q aborted at the deadline", name)
			}
			return virtplane.Errorf(virtplane.ErrCanceled, "migration of %q aborted: %v", name, ctx.Err())
		case <-tick.C:
			if progress == nil {
				continue
			}
			jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			p, err := call(jctx, d, "job info", true, func(lv *golibvirt.Libvirt) (vmm.MigrationProgress, error) {
				typ, _, _, total, processed, remaining, _, _, _, _, _, _, err := lv.DomainGetJobInfo(dom)
				if typ == 0 { // no job (not started yet, or finished)
					return vmm.MigrationProgress{}, errNoJob
				}
				return vmm.MigrationProgress{DataTotal: total, DataProcessed: processed, DataRemaining: remaining}, err
			})
			cancel()
			if err == nil {
				p.Elapsed = time.Since(start)
				progress(p)
			}
		}
	}
}

var errNoJob = errors.New("no job")

// AbortMigration aborts the domain's outgoing migration job
// (virDomainAbortJob) and waits until libvirt reports it ended. A job of
// another kind (a save, a dump) is left alone. The abort is repeated every
// second while the job runs: an abort that arrives before QEMU started to
// migrate can be lost. A domain that disappears meanwhile completed its
// migration before the abort took hold (it was undefined here).
func (d *Driver) AbortMigration(ctx context.Context, name string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	ctx, cancel := d.withDeadline(ctx)
	defer cancel()
	var aborted time.Time
	for {
		out, err := d.migratingOut(ctx, dom)
		switch {
		case errors.Is(err, virtplane.ErrNotFound):
			return nil
		case err != nil:
			return err
		case !out:
			return nil
		}
		if time.Since(aborted) >= time.Second {
			err := do(ctx, d, "abort migration of "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainAbortJob(dom) })
			// "no job is active" (it ended meanwhile) is an invalid
			// operation, and a domain gone completed its migration: the
			// next look tells.
			if err != nil && !errors.Is(err, virtplane.ErrConflict) && !errors.Is(err, virtplane.ErrNotFound) {
				return err
			}
			aborted = time.Now()
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return virtplane.Errorf(virtplane.ErrTimeout, "migration of %q still runs at the deadline after an abort", name)
			}
			return virtplane.Errorf(virtplane.ErrCanceled, "abort migration of %q: %v", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// migratingOut tells whether the domain has an active outgoing migration
// job. A libvirt too old to name the job's operation (before 3.3) has every
// active job taken for one.
func (d *Driver) migratingOut(ctx context.Context, dom golibvirt.Domain) (bool, error) {
	return call(ctx, d, "job stats of "+dom.Name, true, func(lv *golibvirt.Libvirt) (bool, error) {
		typ, params, err := lv.DomainGetJobStats(dom, 0)
		if err != nil {
			return false, err
		}
		if typ != int32(golibvirt.DomainJobBounded) && typ != int32(golibvirt.DomainJobUnbounded) {
			return false, nil
		}
		for _, p := range params {
			if p.Field == golibvirt.DomainJobOperationStr {
				op, ok := p.Value.I.(int32)
				return !ok || op == int32(golibvirt.DomainJobOperationStrMigrationOut), nil
			}
		}
		return true, nil
	})
}

// destinationXML is the running domain's definition with the disks in
// moved on their new sources, for a migration that copies them, and
// without the leftovers of a removed CPU cap (a live cap removed is an
// unlimited quota of -1 until the domain restarts, which a target without
// the cgroup cpu controller would refuse as scheduler tuning). rewritten
// says whether it differs from what libvirt would send by itself.
func (d *Driver) destinationXML(ctx context.Context, dom golibvirt.Domain, name string, moved map[string]vmm.DiskSource) (string, bool, error) {
	x, err := call(ctx, d, "get migratable xml of "+name, true, func(lv *golibvirt.Libvirt) (string, error) {
		return lv.DomainGetXMLDesc(dom, golibvirt.DomainXMLSecure|golibvirt.DomainXMLMigratable)
	})
	if err != nil {
		return "", false, err
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(x); err != nil {
		return "", false, fmt.Errorf("libvirt: parse domain xml of %s: %w", name, err)
	}
	rewritten := len(moved) > 0
	if ct := def.CPUTune; ct != nil && ct.GlobalQuota != nil && ct.GlobalQuota.Value <= 0 {
		ct.GlobalQuota, ct.GlobalPeriod = nil, nil
		rewritten = true
	}
	if !rewritten {
		return "", false, nil
	}
	for t, src := range moved {
		if err := src.Validate("migration disks[" + t + "]"); err != nil {
			return "", false, err
		}
		var dd *libvirtxml.DomainDisk
		if def.Devices != nil {
			for i := range def.Devices.Disks {
				if tg := def.Devices.Disks[i].Target; tg != nil && tg.Dev == t {
					dd = &def.Devices.Disks[i]
				}
			}
		}
		if dd == nil {
			return "", false, virtplane.Errorf(virtplane.ErrInvalidArgument, "migration disks: vm %q has no disk %q", name, t)
		}
		rd, err := renderDisk(vmm.Disk{Target: t, Source: src}, vmm.DiskLimits{})
		if err != nil {
			return "", false, err
		}
		// The copy is a whole disk: it has no backing chain of its own.
		dd.Source, dd.BackingStore = rd.Source, nil
		if dd.Driver == nil {
			dd.Driver = rd.Driver
		}
		dd.Driver.Type = rd.Driver.Type
	}
	out, err := def.Marshal()
	return out, true, err
}

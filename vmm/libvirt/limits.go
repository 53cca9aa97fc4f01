package libvirt

import (
	"context"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// cpuCapPeriod is the CFS period of a CPU cap, in µs (the kernel's default).
const cpuCapPeriod = 100000

// cpuCapQuota is the CFS quota per period of a cap in percent of one CPU.
func cpuCapQuota(percent uint64) int64 { return int64(percent * cpuCapPeriod / 100) }

func typed(field string, v golibvirt.TypedParamValue) golibvirt.TypedParam {
	return golibvirt.TypedParam{Field: field, Value: v}
}

// SetLimits applies limits to the persistent definition and, when the
// domain runs, to the live one.
func (d *Driver) SetLimits(ctx context.Context, name string, l vmm.Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	vm, err := d.get(ctx, dom)
	if err != nil {
		return err
	}
	targets, macs := map[string]bool{}, map[string]bool{}
	for _, disk := range vm.Spec.Disks {
		targets[disk.Target] = true
	}
	for _, n := range vm.Spec.NICs {
		macs[n.MAC] = true
	}
	for t := range l.Disks {
		if !targets[t] {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "limits.disks[%q]: vm %q has no such disk", t, name)
		}
	}
	for m := range l.NICs {
		if !macs[strings.ToLower(m)] {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "limits.nics[%q]: vm %q has no NIC with that MAC", m, name)
		}
	}
	flags := uint32(golibvirt.DomainAffectConfig)
	if vm.State == vmm.StateRunning || vm.State == vmm.StatePaused {
		flags |= uint32(golibvirt.DomainAffectLive)
	}
	// NIC bandwidth goes first: it is what a host is likeliest to refuse
	// (missing tc qdiscs), and nothing else has changed by then.
	for m, nl := range l.NICs {
		if err := d.setNICLimits(ctx, dom, name, m, nl, flags); err != nil {
			if strings.Contains(err.Error(), "qdisc kind is unknown") {
				return virtplane.Errorf(virtplane.ErrNotImplemented, "bandwidth of %s/%s: the host kernel lacks the tc qdiscs libvirt shapes with (%v)", name, m, err)
			}
			return err
		}
	}
	// The IO weight next: a host without a weighing I/O scheduler refuses
	// it, and then the NICs get their bandwidth back.
	if l.IOWeight > 0 {
		if err := do(ctx, d, "set io weight of "+name, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainSetBlkioParameters(dom, []golibvirt.TypedParam{typed("weight", *golibvirt.NewTypedParamValueUint(uint32(l.IOWeight)))}, flags)
		}); err != nil {
			d.restoreNICLimits(context.WithoutCancel(ctx), dom, name, l, vm.Spec.Limits, flags)
			return err
		}
	}
	if l.CPUWeight > 0 {
		if err := do(ctx, d, "set cpu weight of "+name, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainSetSchedulerParametersFlags(dom, []golibvirt.TypedParam{typed("cpu_shares", *golibvirt.NewTypedParamValueUllong(l.CPUWeight))}, flags)
		}); err != nil {
			return err
		}
	}
	if l.CPUCapPercent > 0 {
		if err := d.setCPUCap(ctx, dom, name, l.CPUCapPercent, flags); err != nil {
			return err
		}
	}
	for t, dl := range l.Disks {
		params := []golibvirt.TypedParam{
			typed("read_iops_sec", *golibvirt.NewTypedParamValueUllong(dl.ReadIOPS)),
			typed("write_iops_sec", *golibvirt.NewTypedParamValueUllong(dl.WriteIOPS)),
			typed("read_bytes_sec", *golibvirt.NewTypedParamValueUllong(dl.ReadBytesSec)),
			typed("write_bytes_sec", *golibvirt.NewTypedParamValueUllong(dl.WriteBytesSec)),
		}
		if err := do(ctx, d, "set io limits of "+name+"/"+t, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainSetBlockIOTune(dom, t, params, flags)
		}); err != nil {
			return err
		}
	}
	return nil
}

// setCPUCap sets the CFS bandwidth of the whole machine (global_*, not per
// vCPU: a cap of 150% lets two vCPUs share one and a half host CPUs). A
// cap removed is an unlimited quota (-1) on the running domain, which
// libvirt cannot clear until it restarts, and no period or quota at all in
// the definition: a host without the cgroup cpu controller refuses any.
func (d *Driver) setCPUCap(ctx context.Context, dom golibvirt.Domain, name string, percent uint64, flags uint32) error {
	set := func(f uint32, period uint64, quota int64) error {
		params := []golibvirt.TypedParam{
			typed("global_period", *golibvirt.NewTypedParamValueUllong(period)),
			typed("global_quota", *golibvirt.NewTypedParamValueLlong(quota)),
		}
		return do(ctx, d, "set cpu cap of "+name, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainSetSchedulerParametersFlags(dom, params, f)
		})
	}
	if percent != vmm.NoCap {
		return set(flags, cpuCapPeriod, cpuCapQuota(percent))
	}
	if flags&uint32(golibvirt.DomainAffectLive) != 0 {
		if err := set(uint32(golibvirt.DomainAffectLive), cpuCapPeriod, -1); err != nil {
			return err
		}
	}
	return set(uint32(golibvirt.DomainAffectConfig), 0, 0)
}

// setNICLimits sets the bandwidth of the NIC with MAC m.
func (d *Driver) setNICLimits(ctx context.Context, dom golibvirt.Domain, name, m string, nl vmm.NICLimits, flags uint32) error {
	params := []golibvirt.TypedParam{
		typed("inbound.average", *golibvirt.NewTypedParamValueUint(uint32(min(nl.InboundKiBs, 1<<32-1)))),
		typed("outbound.average", *golibvirt.NewTypedParamValueUint(uint32(min(nl.OutboundKiBs, 1<<32-1)))),
	}
	return do(ctx, d, "set bandwidth of "+name+"/"+m, true, func(lv *golibvirt.Libvirt) error {
		return lv.DomainSetInterfaceParameters(dom, strings.ToLower(m), params, flags)
	})
}

// restoreNICLimits gives the NICs that l changed the bandwidth they had
// (was), after a later part of SetLimits was refused. Best effort: the
// refusal is what the caller hears.
func (d *Driver) restoreNICLimits(ctx context.Context, dom golibvirt.Domain, name string, l, was vmm.Limits, flags uint32) {
	for m := range l.NICs {
		_ = d.setNICLimits(ctx, dom, name, m, was.NICs[strings.ToLower(m)], flags)
	}
}

package flow

import (
	"context"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/vmm"
)

// DiskTargets are the disks of a VM by device, as the API names them.
func DiskTargets(vm model.VM) []string { return vm.DiskTargets() }

// defaultWeight is the cgroup weight a VM has when it names none: the
// weight a 0 in the API puts back.
const defaultWeight = 100

// hypervisorLimits turns a VM's limits into the hypervisor's, as a change
// from old (what the VM had): a weight that did not change is left alone
// (a host without an IO weight controller then refuses only a request
// that asks for one), a weight set back to 0 gets the default, a cap of 0
// removes the cap, and every disk gets exactly its throttles.
func hypervisorLimits(vm model.VM, old, l model.Limits) vmm.Limits {
	out := vmm.Limits{CPUCapPercent: vmm.NoCap, Disks: map[string]vmm.DiskLimits{}}
	if l.CPUPercent > 0 {
		out.CPUCapPercent = uint64(l.CPUPercent) * uint64(max(vm.CPUs, 1))
	}
	weight := func(now, before int) uint64 {
		switch {
		case now == before:
			return 0
		case now == 0:
			return defaultWeight
		}
		return uint64(now)
	}
	out.CPUWeight = weight(l.CPUWeight, old.CPUWeight)
	out.IOWeight = weight(l.IOWeight, old.IOWeight)
	for _, t := range DiskTargets(vm) {
		d, ok := l.Disks[t]
		if !ok {
			d = model.DiskLimits{ReadIOPS: int64(l.DiskIOPS), WriteIOPS: int64(l.DiskIOPS)}
		}
		out.Disks[t] = vmm.DiskLimits{ReadIOPS: uint64(d.ReadIOPS), WriteIOPS: uint64(d.WriteIOPS),
			ReadBytesSec: uint64(d.ReadBytesSec), WriteBytesSec: uint64(d.WriteBytesSec)}
	}
	return out
}

// specLimits are a new domain's limits: hypervisorLimits from none, with
// only what is set.
func specLimits(vm model.VM) vmm.Limits {
	l := hypervisorLimits(vm, model.Limits{}, vm.Limits)
	if l.CPUCapPercent == vmm.NoCap {
		l.CPUCapPercent = 0
	}
	for t, d := range l.Disks {
		if d == (vmm.DiskLimits{}) {
			delete(l.Disks, t)
		}
	}
	if len(l.Disks) == 0 {
		l.Disks = nil
	}
	if vm.Limits.CPUWeight == 0 {
		l.CPUWeight = 0
	}
	if vm.Limits.IOWeight == 0 {
		l.IOWeight = 0
	}
	return l
}

// limits applies a VM's new limits: CPU, IO and disk throttles through the
// hypervisor, the network through its port (withPortLimits). The VM
// record says whether they took effect live or wait for the next start.
func (f *Flow) limits(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	if in.Limits == nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "limits: none given")
	}
	lm, err := capability[vmm.Limiter](drv, "set limits")
	if err != nil {
		return err
	}
	name := DomainName(vm.ID)
	d, err := drv.Get(ctx, name)
	if err != nil {
		return err
	}
	if err := r.Step(ctx, "set limits", tasks.NoUndo, func(ctx context.Context) error {
		return lm.SetLimits(ctx, name, hypervisorLimits(vm, vm.Limits, *in.Limits))
	}); err != nil {
		return err
	}
	applied := "next_start"
	if d.State == vmm.StateRunning || d.State == vmm.StatePaused {
		applied = "live"
	}
	_ = r.Log(ctx, "limits applied "+map[string]string{"live": "live", "next_start": "to the definition; they take effect at the next start"}[applied])
	return r.SetResult(vmPatch{Limits: in.Limits, LimitsApplied: applied})
}

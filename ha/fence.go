package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// FenceMethod says how a fence was confirmed.
type FenceMethod string

// The fence methods, in the order a controller tries them.
const (
	// FenceHypervisor: the node's hypervisor answered and showed the VMs
	// stopped (after stopping the running ones).
	FenceHypervisor FenceMethod = "hypervisor"
	// FencePower: a power fencer switched the node off and reported it off.
	FencePower FenceMethod = "power"
	// FenceSelf: SelfFenceTimeout + FenceMargin passed since the last
	// heartbeat any agreeing controller received, so the node's watchdog
	// has stopped its HA VMs.
	FenceSelf FenceMethod = "self-fence-timeout"
)

// PowerState is what a power fencer reports of a node.
type PowerState string

// The power states.
const (
	PowerOn  PowerState = "on"
	PowerOff PowerState = "off"
)

// Power switches nodes off and on out of band (IPMI, Redfish, a PDU).
// ha/fakepower is the fake; ha/powertest the conformance suite.
type Power interface {
	// PowerOff cuts the node's power; it returns once the request is taken.
	PowerOff(ctx context.Context, node string) error
	// PowerOn restores it.
	PowerOn(ctx context.Context, node string) error
	// PowerState reports the node's power; only PowerOff confirms a fence.
	PowerState(ctx context.Context, node string) (PowerState, error)
}

// fenceRequest is everything one fencing attempt needs.
type fenceRequest struct {
	node   string
	driver vmm.Driver
	power  Power
	vms    []string
	t      Timings
	// lastHeartbeat returns the latest heartbeat of the node any agreeing
	// controller received; it is asked again on every round because a
	// partition that heals moves it.
	lastHeartbeat func(ctx context.Context) (time.Time, error)
}

// fence confirms that none of the VMs runs on the node, trying, every
// TickInterval until FenceTimeout, the hypervisor, the power fencer and the
// self-fence timeout. It returns an error, and the caller restarts nothing,
// unless one of them confirmed.
func fence(ctx context.Context, r fenceRequest) (FenceMethod, string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.t.FenceTimeout)
	defer cancel()
	var errs []string
	for {
		if detail, err := fenceByHypervisor(ctx, r); err == nil {
			return FenceHypervisor, detail, nil
		} else {
			errs = appendOnce(errs, "hypervisor: "+err.Error())
		}
		if r.power != nil {
			if detail, err := fenceByPower(ctx, r); err == nil {
				return FencePower, detail, nil
			} else {
				errs = appendOnce(errs, "power: "+err.Error())
			}
		}
		last, err := r.lastHeartbeat(ctx)
		if err == nil {
			deadline := last.Add(r.t.SelfFenceTimeout + r.t.FenceMargin)
			if !time.Now().Before(deadline) {
				return FenceSelf, fmt.Sprintf("last heartbeat %s ago, self-fence timeout %s + margin %s passed",
					time.Since(last).Round(time.Millisecond), r.t.SelfFenceTimeout, r.t.FenceMargin), nil
			}
		} else {
			errs = appendOnce(errs, "self-fence: "+err.Error())
		}
		t := time.NewTimer(r.t.TickInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", "", virtplane.Errorf(virtplane.ErrTimeout, "fence of node %q not confirmed within %s (%s)", r.node, r.t.FenceTimeout, strings.Join(errs, "; "))
		case <-t.C:
		}
	}
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// fenceByHypervisor stops every listed VM that runs and confirms, by a
// second look, that none does.
func fenceByHypervisor(ctx context.Context, r fenceRequest) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.t.ProbeTimeout)
	defer cancel()
	stopped := 0
	for _, name := range r.vms {
		vm, err := r.driver.Get(ctx, name)
		if errors.Is(err, virtplane.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if vm.State == vmm.StateRunning || vm.State == vmm.StatePaused {
			if err := r.driver.Stop(ctx, name); err != nil && !errors.Is(err, virtplane.ErrConflict) {
				return "", err
			}
			stopped++
		}
	}
	for _, name := range r.vms {
		vm, err := r.driver.Get(ctx, name)
		if errors.Is(err, virtplane.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if vm.State == vmm.StateRunning || vm.State == vmm.StatePaused {
			return "", virtplane.Errorf(virtplane.ErrConflict, "vm %q still %s after stop", name, vm.State)
		}
	}
	return fmt.Sprintf("hypervisor answered; stopped %d of %d VMs, none runs", stopped, len(r.vms)), nil
}

func fenceByPower(ctx context.Context, r fenceRequest) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.t.ProbeTimeout)
	defer cancel()
	if err := r.power.PowerOff(ctx, r.node); err != nil {
		return "", err
	}
	st, err := r.power.PowerState(ctx, r.node)
	if err != nil {
		return "", err
	}
	if st != PowerOff {
		return "", virtplane.Errorf(virtplane.ErrConflict, "node %q power is %s after power off", r.node, st)
	}
	return "power fencer reports the node off", nil
}

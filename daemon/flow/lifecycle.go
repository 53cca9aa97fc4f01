package flow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/tasks"
)

// DefaultShutdownTimeout is how long a graceful shutdown or reboot waits
// for the guest when the request names no timeout.
const DefaultShutdownTimeout = 60 * time.Second

// MaxShutdownTimeout bounds the wait a request may ask for.
const MaxShutdownTimeout = time.Hour

func shutdownTimeout(in VMInput) time.Duration {
	if in.TimeoutSec <= 0 {
		return DefaultShutdownTimeout
	}
	return min(time.Duration(in.TimeoutSec)*time.Second, MaxShutdownTimeout)
}

// pause suspends (the CPUs stop, memory stays) or resumes a VM.
func (f *Flow) pause(suspend bool) func(context.Context, *tasks.Run) error {
	return func(ctx context.Context, r *tasks.Run) error {
		vm, _, drv, err := f.withDomain(ctx, r)
		if err != nil {
			return err
		}
		name, state, step := DomainName(vm.ID), model.VMRunning, "resume"
		if suspend {
			state, step = model.VMPaused, "suspend"
		}
		if err := r.Step(ctx, step, tasks.NoUndo, func(ctx context.Context) error {
			if suspend {
				return drv.Suspend(ctx, name)
			}
			return drv.Resume(ctx, name)
		}); err != nil {
			return err
		}
		return r.SetResult(vmPatch{State: state})
	}
}

// shutdown asks the guest to power off (ACPI) and waits up to the
// request's timeout; a guest that does not stop in time is powered off
// when the request allows it (force), else the task fails with
// ErrTimeout and the VM keeps running.
func (f *Flow) shutdown(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	name, timeout := DomainName(vm.ID), shutdownTimeout(in)
	var timedOut bool
	if err := r.Step(ctx, fmt.Sprintf("shut down (wait %s)", timeout), tasks.NoUndo, func(ctx context.Context) error {
		err := drv.Shutdown(ctx, name, timeout)
		if errors.Is(err, virtplane.ErrTimeout) && in.Force {
			timedOut = true
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	if timedOut {
		_ = r.Log(ctx, fmt.Sprintf("the guest did not stop within %s: powering it off", timeout))
		if err := r.Step(ctx, "power off (forced)", tasks.NoUndo, func(ctx context.Context) error {
			return drv.Stop(ctx, name)
		}); err != nil {
			return err
		}
	}
	return r.SetResult(vmPatch{State: model.VMStopped})
}

// reboot restarts the guest gracefully: shut down (waiting up to the
// timeout), then start; a guest that does not stop in time is reset when
// the request allows it (force).
func (f *Flow) reboot(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	name, timeout := DomainName(vm.ID), shutdownTimeout(in)
	var timedOut bool
	if err := r.Step(ctx, fmt.Sprintf("shut down (wait %s)", timeout), tasks.NoUndo, func(ctx context.Context) error {
		err := drv.Shutdown(ctx, name, timeout)
		if errors.Is(err, virtplane.ErrTimeout) && in.Force {
			timedOut = true
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	if timedOut {
		_ = r.Log(ctx, fmt.Sprintf("the guest did not stop within %s: resetting it", timeout))
		if err := r.Step(ctx, "reset (forced)", tasks.NoUndo, func(ctx context.Context) error {
			return drv.Reboot(ctx, name)
		}); err != nil {
			return err
		}
	} else if err := r.Step(ctx, "start", tasks.NoUndo, func(ctx context.Context) error {
		return drv.Start(ctx, name)
	}); err != nil {
		return err
	}
	return r.SetResult(vmPatch{State: model.VMRunning})
}

// reset restarts a running VM at once, like the reset button.
func (f *Flow) reset(ctx context.Context, r *tasks.Run) error {
	vm, _, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	if err := r.Step(ctx, "reset", tasks.NoUndo, func(ctx context.Context) error {
		return drv.Reboot(ctx, DomainName(vm.ID))
	}); err != nil {
		return err
	}
	return r.SetResult(vmPatch{State: model.VMRunning})
}

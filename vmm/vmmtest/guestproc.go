package vmmtest

import (
	"context"
	"fmt"
	"time"

	"github.com/virtplane/virtplane/vmm"
)

// WaitGuestProcess is a WaitBooted for guests reached through the driver's
// guest agent: it polls until a process named process runs in the guest.
// A container whose init starts that process last (busybox init's respawn
// entries) has then set up its signal handling; a shutdown sent before
// that would kill init instead of being ignored or obeyed.
func WaitGuestProcess(d vmm.Driver, process string) func(ctx context.Context, name string) error {
	return func(ctx context.Context, name string) error {
		ga, ok := vmm.As[vmm.GuestAgent](d)
		if !ok {
			return fmt.Errorf("driver %T has no guest agent to look for %s with", d, process)
		}
		var last string
		for {
			res, err := ga.GuestExec(ctx, name, []string{"pidof", process})
			if err == nil && res.ExitCode == 0 {
				return nil
			}
			last = fmt.Sprintf("%v (exit %d)", err, res.ExitCode)
			select {
			case <-ctx.Done():
				return fmt.Errorf("no %s in guest %s: %w; last answer %s", process, name, ctx.Err(), last)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

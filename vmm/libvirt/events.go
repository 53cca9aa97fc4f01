package libvirt

import (
	"context"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/virtplane/virtplane/vmm"
)

// lifecycle event types of libvirt (virDomainEventType).
var eventNames = map[int32]string{
	0: "defined", 1: "undefined", 2: "started", 3: "suspended", 4: "resumed",
	5: "stopped", 6: "shutdown", 7: "pmsuspended", 8: "crashed",
}

// Events streams lifecycle events. The stream survives libvirtd restarts:
// when the connection drops, the driver reconnects and subscribes again
// (events that happened while libvirtd was down are not replayed).
func (d *Driver) Events(ctx context.Context) (<-chan vmm.Event, error) {
	lv, err := d.conn(ctx)
	if err != nil {
		return nil, err
	}
	first, err := lv.LifecycleEvents(ctx)
	if err != nil {
		return nil, classify("subscribe to events", err, lv)
	}
	out := make(chan vmm.Event, 256)
	go func() {
		defer close(out)
		in := first
		for {
			for ev := range in {
				d.forward(ctx, ev, out)
			}
			// The stream closed: ctx ended or the connection dropped.
			for {
				if ctx.Err() != nil {
					return
				}
				lv, err := d.conn(ctx)
				if err == nil {
					in, err = lv.LifecycleEvents(ctx)
				}
				if err == nil {
					d.log.Info("event stream resubscribed")
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(500 * time.Millisecond):
				}
			}
		}
	}()
	return out, nil
}

func (d *Driver) forward(ctx context.Context, ev golibvirt.DomainEventLifecycleMsg, out chan<- vmm.Event) {
	e := vmm.Event{VM: ev.Dom.Name, Reason: eventNames[ev.Event], Time: time.Now()}
	switch ev.Event {
	case 2, 4:
		e.State = vmm.StateRunning
	case 3, 7:
		e.State = vmm.StatePaused
	case 5, 1:
		e.State = vmm.StateStopped
	case 8:
		e.State = vmm.StateCrashed
	default:
		// defined or shutdown say nothing certain about the run state:
		// a running domain can be redefined. Ask.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := d.state(sctx, ev.Dom)
		cancel()
		if err != nil {
			return
		}
		e.State = st
	}
	select {
	case out <- e:
	default: // a slow reader loses events rather than stalling libvirt's stream
	}
}

package ha

import (
	"time"

	"github.com/virtplane/virtplane"
)

// Timings are every delay the controllers and the node agents use. The zero
// value of a field means its default (DefaultTimings). The defaults are
// chosen so that an HA VM on a node that dies runs again elsewhere within
// 10 s even when nothing but the self-fence timeout can confirm the fence:
//
//	last heartbeat received            t0
//	node suspect (SuspectAfter)        t0 + 1 s
//	node failed (FailAfter, both the
//	  heartbeats and the hypervisor)   t0 + 2 s
//	node's watchdog has stopped its
//	  HA VMs (SelfFenceTimeout)        t0 + 3 s
//	fence confirmed by waiting
//	  (SelfFenceTimeout + FenceMargin) t0 + 4 s
//	VMs restarted (parallel, bounded)  t0 + 4 s + the boot calls
//
// A hypervisor that still answers or a power fencer confirms the fence at
// t0 + 2 s already.
type Timings struct {
	// HeartbeatInterval is how often a node agent sends a heartbeat to every
	// controller. Default 250 ms.
	HeartbeatInterval time.Duration
	// ProbeInterval is how often a controller asks each node's hypervisor
	// for its machines; ProbeTimeout bounds one probe. Defaults 250 ms and
	// 500 ms.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// CheckInterval is how often a node agent probes the check address.
	// Default 250 ms.
	CheckInterval time.Duration
	// TickInterval is how often the detector and the watchdog look at the
	// signals. Default 100 ms.
	TickInterval time.Duration
	// SuspectAfter: a node whose heartbeats or hypervisor have been silent
	// this long, or that reports the check address lost, is suspect.
	// Default 1 s.
	SuspectAfter time.Duration
	// FailAfter: a node is failed when its heartbeats AND its hypervisor
	// have been silent this long, or when it has reported the check address
	// lost this long (isolation). Default 2 s.
	FailAfter time.Duration
	// SelfFenceTimeout: a node agent that has not reached a majority of the
	// controllers for this long stops its HA VMs. Default 3 s.
	SelfFenceTimeout time.Duration
	// FenceMargin is what a controller waits beyond SelfFenceTimeout, after
	// the last heartbeat any agreeing controller received, before it takes
	// the self-fence as done: it covers the watchdog's tick, the stop calls
	// and the delivery of the last acknowledgement. Default 1 s.
	FenceMargin time.Duration
	// FenceTimeout bounds one fencing attempt; a failed attempt is retried
	// after RetryInterval. Default 30 s.
	FenceTimeout time.Duration
	// RecoverAfter: a failed node is healthy again once every signal has
	// been good this long. Default 10 s.
	RecoverAfter time.Duration
	// RestartTimeout bounds the restart (create and start) of one VM.
	// Default 30 s.
	RestartTimeout time.Duration
	// RetryInterval is how often VMs that found no node, failed restarts
	// and failed fences are tried again. Default 5 s.
	RetryInterval time.Duration
	// RestartParallelism bounds the restarts running at once. Default 16.
	RestartParallelism int
}

// DefaultTimings returns the documented defaults.
func DefaultTimings() Timings {
	return Timings{
		HeartbeatInterval:  250 * time.Millisecond,
		ProbeInterval:      250 * time.Millisecond,
		ProbeTimeout:       500 * time.Millisecond,
		CheckInterval:      250 * time.Millisecond,
		TickInterval:       100 * time.Millisecond,
		SuspectAfter:       1 * time.Second,
		FailAfter:          2 * time.Second,
		SelfFenceTimeout:   3 * time.Second,
		FenceMargin:        1 * time.Second,
		FenceTimeout:       30 * time.Second,
		RecoverAfter:       10 * time.Second,
		RestartTimeout:     30 * time.Second,
		RetryInterval:      5 * time.Second,
		RestartParallelism: 16,
	}
}

// WithDefaults returns t with every zero field set to its default.
func (t Timings) WithDefaults() Timings {
	d := DefaultTimings()
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&t.HeartbeatInterval, d.HeartbeatInterval)
	set(&t.ProbeInterval, d.ProbeInterval)
	set(&t.ProbeTimeout, d.ProbeTimeout)
	set(&t.CheckInterval, d.CheckInterval)
	set(&t.TickInterval, d.TickInterval)
	set(&t.SuspectAfter, d.SuspectAfter)
	set(&t.FailAfter, d.FailAfter)
	set(&t.SelfFenceTimeout, d.SelfFenceTimeout)
	set(&t.FenceMargin, d.FenceMargin)
	set(&t.FenceTimeout, d.FenceTimeout)
	set(&t.RecoverAfter, d.RecoverAfter)
	set(&t.RestartTimeout, d.RestartTimeout)
	set(&t.RetryInterval, d.RetryInterval)
	if t.RestartParallelism == 0 {
		t.RestartParallelism = d.RestartParallelism
	}
	return t
}

// Validate checks t after defaults: no negative delay, and the orderings
// the safety argument needs (suspect before failed, a heartbeat well within
// the self-fence timeout).
func (t Timings) Validate() error {
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatInterval", t.HeartbeatInterval}, {"ProbeInterval", t.ProbeInterval},
		{"ProbeTimeout", t.ProbeTimeout}, {"CheckInterval", t.CheckInterval},
		{"TickInterval", t.TickInterval}, {"SuspectAfter", t.SuspectAfter},
		{"FailAfter", t.FailAfter}, {"SelfFenceTimeout", t.SelfFenceTimeout},
		{"FenceMargin", t.FenceMargin}, {"FenceTimeout", t.FenceTimeout},
		{"RecoverAfter", t.RecoverAfter}, {"RestartTimeout", t.RestartTimeout},
		{"RetryInterval", t.RetryInterval},
	} {
		if f.v < 0 {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "timings.%s %s: negative", f.name, f.v)
		}
	}
	if t.RestartParallelism < 0 {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "timings.RestartParallelism %d: negative", t.RestartParallelism)
	}
	if t.FailAfter < t.SuspectAfter {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "timings.FailAfter %s: shorter than SuspectAfter %s", t.FailAfter, t.SuspectAfter)
	}
	if t.HeartbeatInterval*2 > t.SelfFenceTimeout {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "timings.HeartbeatInterval %s: more than half the SelfFenceTimeout %s, a healthy node would fence itself", t.HeartbeatInterval, t.SelfFenceTimeout)
	}
	if t.TickInterval >= t.FenceMargin {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "timings.TickInterval %s: not below FenceMargin %s, the watchdog could act after the controllers restart", t.TickInterval, t.FenceMargin)
	}
	return nil
}

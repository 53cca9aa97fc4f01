package ha

import "time"

// Watchdog is the pure core of a node's self-fencing: it is told when the
// node last reached a majority of the controllers and whether it reaches the
// check address, and on Tick says when the node must stop its HA VMs. Like
// the Detector it has no clock. A Watchdog is not safe for concurrent use.
//
// The rule: a node that has not reached a majority of the controllers for
// SelfFenceTimeout stops its HA VMs, and keeps stopping any HA VM it finds
// running until it reaches a majority again. The check address does not
// spare it: a node cut from the controllers that still reaches the check
// address looks, to the controllers, exactly like a dead one, and they
// restart its VMs after SelfFenceTimeout + FenceMargin. A watchdog that kept
// the VMs running in that case would let a VM run twice. The check address
// works on the controller side instead: a node that reports it lost is
// declared failed (isolated) and fenced through its hypervisor.
type Watchdog struct {
	timeout     time.Duration
	lastContact time.Time
	checkOK     bool
	fenced      bool
}

// NewWatchdog returns a watchdog that counts its timeout from now.
func NewWatchdog(t Timings, now time.Time) *Watchdog {
	t = t.WithDefaults()
	return &Watchdog{timeout: t.SelfFenceTimeout, lastContact: now, checkOK: true}
}

// Contact records that a majority of the controllers acknowledged a
// heartbeat at at. It re-arms a fenced watchdog.
func (w *Watchdog) Contact(at time.Time) {
	if at.After(w.lastContact) {
		w.lastContact = at
	}
	w.fenced = false
}

// CheckAddress records whether the node reaches the check address.
func (w *Watchdog) CheckAddress(ok bool) { w.checkOK = ok }

// CheckOK reports the last check-address result.
func (w *Watchdog) CheckOK() bool { return w.checkOK }

// Deadline is when the watchdog fires if no contact comes first.
func (w *Watchdog) Deadline() time.Time { return w.lastContact.Add(w.timeout) }

// Tick reports whether, at now, the node must stop its HA VMs; it keeps
// saying so while the node has no contact. first is true on the tick the
// watchdog fires, for the log.
func (w *Watchdog) Tick(now time.Time) (fence, first bool) {
	if now.Before(w.Deadline()) {
		return false, false
	}
	first = !w.fenced
	w.fenced = true
	return true, first
}

// Fenced reports whether the watchdog has fired and not been re-armed.
func (w *Watchdog) Fenced() bool { return w.fenced }

package ha

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// NodeState is what a controller's detector thinks of a node.
type NodeState string

// The node states.
const (
	// NodeHealthy: every signal is fresh.
	NodeHealthy NodeState = "healthy"
	// NodeSuspect: a signal is late, or the node reports its check address
	// lost; nothing is done yet.
	NodeSuspect NodeState = "suspect"
	// NodeFailed: the signals agree that the node is gone (or isolated). A
	// failed node stays failed until every signal has been good for
	// Timings.RecoverAfter, so that a flapping node does not bounce.
	NodeFailed NodeState = "failed"
)

// Transition is a change of a node's state with the reason, in words, for
// the decision log.
type Transition struct {
	Node     string
	From, To NodeState
	At       time.Time
	Reason   string
	// LastHeartbeat is when the last heartbeat of the node arrived.
	LastHeartbeat time.Time
}

// Detector is the pure core of failure detection: it is fed signals with
// their times and, on Tick, says which nodes changed state. It has no clock
// and no goroutines; the Controller feeds it from the real (or a fake)
// clock. A Detector is not safe for concurrent use.
type Detector struct {
	t     Timings
	nodes map[string]*nodeSignals
}

type nodeSignals struct {
	state          NodeState
	lastHeartbeat  time.Time
	lastHypervisor time.Time
	// checkLostSince is when the node first reported the check address
	// lost; zero while it reports it reachable.
	checkLostSince time.Time
	// goodSince is when every signal last became fresh; zero while one is late.
	goodSince time.Time
}

// NewDetector returns a detector with the given timings (zero fields mean
// the defaults).
func NewDetector(t Timings) *Detector {
	return &Detector{t: t.WithDefaults(), nodes: map[string]*nodeSignals{}}
}

// AddNode starts watching a node as healthy at now: it has until
// SuspectAfter to send its first heartbeat. Adding a known node does nothing.
func (d *Detector) AddNode(id string, now time.Time) {
	if _, ok := d.nodes[id]; ok {
		return
	}
	d.nodes[id] = &nodeSignals{state: NodeHealthy, lastHeartbeat: now, lastHypervisor: now, goodSince: now}
}

// RemoveNode stops watching a node.
func (d *Detector) RemoveNode(id string) { delete(d.nodes, id) }

// Heartbeat records a heartbeat received at at, in which the node says
// whether it reaches the check address. Unknown nodes are ignored.
func (d *Detector) Heartbeat(id string, at time.Time, checkOK bool) {
	n, ok := d.nodes[id]
	if !ok {
		return
	}
	if at.After(n.lastHeartbeat) {
		n.lastHeartbeat = at
	}
	switch {
	case checkOK:
		n.checkLostSince = time.Time{}
	case n.checkLostSince.IsZero():
		n.checkLostSince = at
	}
}

// HypervisorOK records that the node's hypervisor answered a probe at at.
func (d *Detector) HypervisorOK(id string, at time.Time) {
	if n, ok := d.nodes[id]; ok && at.After(n.lastHypervisor) {
		n.lastHypervisor = at
	}
}

// State returns a node's state; ok is false for an unknown node.
func (d *Detector) State(id string) (NodeState, bool) {
	n, ok := d.nodes[id]
	if !ok {
		return "", false
	}
	return n.state, true
}

// LastHeartbeat returns when the node's last heartbeat arrived.
func (d *Detector) LastHeartbeat(id string) time.Time {
	if n, ok := d.nodes[id]; ok {
		return n.lastHeartbeat
	}
	return time.Time{}
}

// Tick evaluates every node at now and returns the transitions, sorted by node.
func (d *Detector) Tick(now time.Time) []Transition {
	var out []Transition
	for id, n := range d.nodes {
		hb := now.Sub(n.lastHeartbeat)
		hv := now.Sub(n.lastHypervisor)
		checkLost := !n.checkLostSince.IsZero()
		checkFor := now.Sub(n.checkLostSince)

		late := hb > d.t.SuspectAfter || hv > d.t.SuspectAfter || checkLost
		if late {
			n.goodSince = time.Time{}
		} else if n.goodSince.IsZero() {
			n.goodSince = now
		}

		var next NodeState
		var why []string
		switch {
		case hb >= d.t.FailAfter && hv >= d.t.FailAfter:
			next = NodeFailed
			why = append(why, fmt.Sprintf("no heartbeat for %s and hypervisor silent for %s (fail after %s)", hb, hv, d.t.FailAfter))
		case checkLost && checkFor >= d.t.FailAfter:
			next = NodeFailed
			why = append(why, fmt.Sprintf("node reports its check address lost for %s (fail after %s): isolated", checkFor, d.t.FailAfter))
		case late:
			next = NodeSuspect
			if hb > d.t.SuspectAfter {
				why = append(why, fmt.Sprintf("no heartbeat for %s", hb))
			}
			if hv > d.t.SuspectAfter {
				why = append(why, fmt.Sprintf("hypervisor silent for %s", hv))
			}
			if checkLost {
				why = append(why, fmt.Sprintf("check address lost for %s", checkFor))
			}
		default:
			next = NodeHealthy
			why = append(why, "every signal fresh")
		}
		if n.state == NodeFailed && next != NodeFailed {
			// Hysteresis: a failed node comes back only after RecoverAfter
			// of good signals; until then it stays failed.
			if next == NodeSuspect || n.goodSince.IsZero() || now.Sub(n.goodSince) < d.t.RecoverAfter {
				continue
			}
			why = []string{fmt.Sprintf("every signal good for %s (recover after %s)", now.Sub(n.goodSince), d.t.RecoverAfter)}
		}
		if next != n.state {
			out = append(out, Transition{Node: id, From: n.state, To: next, At: now, Reason: strings.Join(why, "; "), LastHeartbeat: n.lastHeartbeat})
			n.state = next
		}
	}
	slices.SortFunc(out, func(a, b Transition) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// Majority reports whether votes agreeing out of voters is a strict majority.
func Majority(agreeing, voters int) bool { return voters > 0 && agreeing*2 > voters }

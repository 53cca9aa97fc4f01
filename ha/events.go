package ha

import (
	"slices"
	"sync"
	"time"
)

// EventKind names a decision or state change.
type EventKind string

// The kinds of events.
const (
	EventNodeSuspect   EventKind = "node-suspect"
	EventNodeFailed    EventKind = "node-failed"
	EventNodeHealthy   EventKind = "node-healthy"
	EventFenceStarted  EventKind = "fence-started"
	EventFenced        EventKind = "fenced"
	EventFenceFailed   EventKind = "fence-failed"
	EventVMRestarted   EventKind = "vm-restarted"
	EventVMRestartFail EventKind = "vm-restart-failed"
	EventVMNotRestart  EventKind = "vm-not-restarted"
	EventVMUnplaced    EventKind = "vm-unplaced"
	EventVMMigrated    EventKind = "vm-migrated"
	EventVMMigrateFail EventKind = "vm-migrate-failed"
	EventSelfFenced    EventKind = "self-fenced"
	EventDrainStarted  EventKind = "drain-started"
	EventDrainDone     EventKind = "drain-done"
	EventReturnDone    EventKind = "return-done"
	EventStaleRemoved  EventKind = "vm-stale-removed"
)

// Event is one entry of the decision log: what happened, to which node and
// VM, and why, in words a task history can show.
type Event struct {
	Time time.Time
	Kind EventKind
	Node string
	VM   string
	// Target is where a VM went (restart or migration).
	Target string
	// Method is how a node was fenced (FenceHypervisor, FencePower, FenceSelf).
	Method FenceMethod
	Reason string
}

// DecisionLog keeps every event in order and hands each to an optional sink
// (the daemon's task history, an event stream). It is safe for concurrent use.
type DecisionLog struct {
	mu     sync.Mutex
	events []Event
	sink   func(Event)
}

// NewDecisionLog returns an empty log; sink, when not nil, receives every
// event as it is recorded (it must not block).
func NewDecisionLog(sink func(Event)) *DecisionLog { return &DecisionLog{sink: sink} }

// Record appends e.
func (l *DecisionLog) Record(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	sink := l.sink
	l.mu.Unlock()
	if sink != nil {
		sink(e)
	}
}

// Events returns a copy of the events so far, oldest first.
func (l *DecisionLog) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// Filter returns the events of kind k (all when k is empty) about node
// (any node when empty).
func (l *DecisionLog) Filter(k EventKind, node string) []Event {
	var out []Event
	for _, e := range l.Events() {
		if (k == "" || e.Kind == k) && (node == "" || e.Node == node) {
			out = append(out, e)
		}
	}
	return out
}

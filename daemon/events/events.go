// Package events fans out the daemon's state changes (objects created,
// changed, deleted; task progress) to subscribers, such as the API's
// WebSocket stream. Each event names the owner of what changed so that a
// subscriber sees only what its caller may see. A slow subscriber loses
// events (counted in Dropped) rather than slowing the daemon down.
//
//	bus := events.NewBus()
//	sub := bus.Subscribe(func(e events.Event) bool { return e.Owner == uid }, 64)
//	defer sub.Close()
//	bus.Publish(events.Event{Type: "task", Owner: uid, ID: taskID, State: "running"})
//	e := <-sub.C
package events

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is one change.
type Event struct {
	Type     string    `json:"type" doc:"task, vm, node, cluster, pool, image, script"`
	Action   string    `json:"action" doc:"created, changed, deleted, progress"`
	ID       string    `json:"id"`
	Owner    string    `json:"owner,omitempty"`
	State    string    `json:"state,omitempty"`
	Progress int       `json:"progress,omitempty"`
	Message  string    `json:"message,omitempty"`
	Target   string    `json:"target,omitempty"`
	At       time.Time `json:"at"`
}

// Bus delivers events to subscribers.
type Bus struct {
	mu     sync.RWMutex
	subs   map[*Subscription]struct{}
	closed bool
}

// NewBus returns a bus without subscribers.
func NewBus() *Bus { return &Bus{subs: map[*Subscription]struct{}{}} }

// Subscription receives the events its filter accepts on C.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	filter  func(Event) bool
	bus     *Bus
	once    sync.Once
	dropped atomic.Int64
}

// Dropped counts the events lost because C was full.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.bus.mu.Unlock()
		close(s.c)
	})
}

// Subscribe registers a subscriber with a buffer of size events; a nil
// filter accepts everything.
func (b *Bus) Subscribe(filter func(Event) bool, size int) *Subscription {
	c := make(chan Event, max(size, 1))
	s := &Subscription{C: c, c: c, filter: filter, bus: b}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s.once.Do(func() { close(c) })
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

// Publish delivers e to every subscriber that accepts it, without blocking.
func (b *Bus) Publish(e Event) {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		if s.filter != nil && !s.filter(e) {
			continue
		}
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

// Subscribers returns how many subscriptions are open.
func (b *Bus) Subscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

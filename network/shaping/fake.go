package shaping

import (
	"context"
	"sync"

	"github.com/virtplane/virtplane"
)

// Limiter installs per-port bandwidth limits. Shaper is the tc
// implementation, Fake the in-memory one; both pass shapingtest.Run.
type Limiter interface {
	// Apply installs l and reports whether anything changed.
	Apply(ctx context.Context, l Limit) (bool, error)
	// Current returns the limits installed on port.
	Current(ctx context.Context, port string) (State, error)
	// Remove deletes the port's limits; removing none is fine.
	Remove(ctx context.Context, port string) error
}

var (
	_ Limiter = (*Shaper)(nil)
	_ Limiter = (*Fake)(nil)
)

// Fake is an in-memory Limiter over a fixed set of ports; it records every
// limit applied and fails on demand.
type Fake struct {
	mu       sync.Mutex
	ports    map[string]State
	history  []Limit
	failNext error
}

// NewFake returns a Fake whose host has the given ports.
func NewFake(ports ...string) *Fake {
	f := &Fake{ports: map[string]State{}}
	for _, p := range ports {
		f.ports[p] = State{}
	}
	return f
}

// FailNext makes the next Apply fail with err, changing nothing.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

// History returns every limit applied successfully.
func (f *Fake) History() []Limit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Limit(nil), f.history...)
}

// Apply records the limit.
func (f *Fake) Apply(ctx context.Context, l Limit) (bool, error) {
	if err := l.Validate(); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.ports[l.Port]
	if !ok {
		return false, virtplane.Errorf(virtplane.ErrNotFound, "shaping: port %q: no such link", l.Port)
	}
	if err := f.failNext; err != nil {
		f.failNext = nil
		if virtplane.Class(err) == nil {
			err = virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: %v", l.Port, err)
		}
		return false, err
	}
	want := State{InKbit: l.InKbit, OutKbit: l.OutKbit}
	if cur == want {
		return false, nil
	}
	f.ports[l.Port] = want
	f.history = append(f.history, l)
	return true, nil
}

// Current returns the port's limits.
func (f *Fake) Current(ctx context.Context, port string) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.ports[port]
	if !ok {
		return State{}, virtplane.Errorf(virtplane.ErrNotFound, "shaping: port %q: no such link", port)
	}
	return st, ctx.Err()
}

// Remove clears the port's limits.
func (f *Fake) Remove(ctx context.Context, port string) error {
	_, err := f.Apply(ctx, Limit{Port: port})
	return err
}

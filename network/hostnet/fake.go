package hostnet

import (
	"context"
	"slices"
	"sync"

	"github.com/virtplane/virtplane"
)

// Fake is an in-memory Configurator for the daemon's and HA's tests: it
// keeps a model of the host's links, records every configuration it was
// given, and fails on demand.
type Fake struct {
	mu      sync.Mutex
	links   []Link
	history []Desired
	fail    map[Op]error
}

var _ Configurator = (*Fake)(nil)

// NewFake returns a Fake whose host has the given links (taps, NICs) that
// it does not own.
func NewFake(existing ...string) *Fake {
	f := &Fake{fail: map[Op]error{}}
	for _, n := range existing {
		f.links = append(f.links, Link{Name: n, Kind: KindOther, MTU: 1500})
	}
	return f
}

// AddLink adds a link the Fake does not own, as a hypervisor creating a tap would.
func (f *Fake) AddLink(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = append(f.links, Link{Name: name, Kind: KindOther, MTU: 1500})
}

// FailOn makes the next Apply whose plan contains op fail with err, leaving
// the model unchanged, as a failed and reverted kernel step would.
func (f *Fake) FailOn(op Op, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = err
}

// History returns every configuration Apply was called with, in order.
func (f *Fake) History() []Desired {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.history)
}

// Last returns the last configuration applied successfully and whether there was one.
func (f *Fake) Last() (Desired, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.history) == 0 {
		return Desired{}, false
	}
	return f.history[len(f.history)-1], true
}

// Apply plans against the model and applies the plan to it.
func (f *Fake) Apply(ctx context.Context, d Desired) ([]Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	changes, err := Plan(f.links, d)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if err, ok := f.fail[c.Op]; ok {
			delete(f.fail, c.Op)
			if virtplane.Class(err) == nil {
				err = virtplane.Errorf(virtplane.ErrUnavailable, "%s: %v", c, err)
			}
			return nil, err
		}
	}
	f.links = Simulate(f.links, changes)
	f.history = append(f.history, d)
	return changes, nil
}

// Links returns the model's links.
func (f *Fake) Links(ctx context.Context) ([]Link, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.links)
	for i := range out {
		out[i].Addresses = slices.Clone(out[i].Addresses)
	}
	return out, nil
}

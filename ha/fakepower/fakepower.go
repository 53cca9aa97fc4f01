// Package fakepower is an in-memory ha.Power: a set of nodes with a power
// switch each, call recording, fault injection and a hook run when a node
// loses power (a simulation crashes the node's machines there). It passes
// ha/powertest like every real power fencer.
//
//	p := fakepower.New("node-1", "node-2")
//	p.OnPowerOff(func(node string) { drivers[node].CrashAll() })
//	p.FailNext("PowerOff", virtplane.Errorf(virtplane.ErrUnavailable, "BMC down"))
package fakepower

import (
	"context"
	"slices"
	"sync"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/ha"
)

// Call is one recorded call.
type Call struct {
	Method, Node string
}

// Power is the fake.
type Power struct {
	mu      sync.Mutex
	state   map[string]ha.PowerState
	faults  map[string][]error
	calls   []Call
	onOff   func(node string)
	blocked map[string]bool
}

var _ ha.Power = (*Power)(nil)

// New returns a fencer for nodes, all powered on.
func New(nodes ...string) *Power {
	p := &Power{state: map[string]ha.PowerState{}, faults: map[string][]error{}, blocked: map[string]bool{}}
	for _, n := range nodes {
		p.state[n] = ha.PowerOn
	}
	return p
}

// OnPowerOff runs f (outside the fake's lock) each time a node goes from on to off.
func (p *Power) OnPowerOff(f func(node string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onOff = f
}

// FailNext makes the next call of method return err.
func (p *Power) FailNext(method string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[method] = append(p.faults[method], err)
}

// Unreachable makes every call about node fail with ErrUnavailable, like a
// BMC on the same dead network as its node (until called with false).
func (p *Power) Unreachable(node string, unreachable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked[node] = unreachable
}

// Calls returns the calls so far.
func (p *Power) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func (p *Power) enter(ctx context.Context, method, node string) error {
	p.calls = append(p.calls, Call{method, node})
	if err := ctx.Err(); err != nil {
		return virtplane.Errorf(virtplane.ErrCanceled, "fakepower: %v", err)
	}
	if q := p.faults[method]; len(q) > 0 {
		p.faults[method] = q[1:]
		return q[0]
	}
	if _, ok := p.state[node]; !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "node %q", node)
	}
	if p.blocked[node] {
		return virtplane.Errorf(virtplane.ErrUnavailable, "node %q: power controller unreachable", node)
	}
	return nil
}

// PowerOff switches node off.
func (p *Power) PowerOff(ctx context.Context, node string) error {
	p.mu.Lock()
	if err := p.enter(ctx, "PowerOff", node); err != nil {
		p.mu.Unlock()
		return err
	}
	was := p.state[node]
	p.state[node] = ha.PowerOff
	hook := p.onOff
	p.mu.Unlock()
	if was == ha.PowerOn && hook != nil {
		hook(node)
	}
	return nil
}

// PowerOn switches node on.
func (p *Power) PowerOn(ctx context.Context, node string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enter(ctx, "PowerOn", node); err != nil {
		return err
	}
	p.state[node] = ha.PowerOn
	return nil
}

// PowerState reports node's power.
func (p *Power) PowerState(ctx context.Context, node string) (ha.PowerState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enter(ctx, "PowerState", node); err != nil {
		return "", err
	}
	return p.state[node], nil
}

package port

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/virtplane/virtplane"
)

// Fake is an in-memory Ports: it keeps the specs of its ports, records
// every call, and fails on demand.
type Fake struct {
	mu     sync.Mutex
	ports  map[string]Spec
	calls  []Call
	faults map[string][]error
	// unable are the modes this node cannot do.
	unable map[string]bool
}

var _ Ports = (*Fake)(nil)

// Call is one recorded call: the method ("Setup", "Teardown", "List") and
// the port it named (empty for List).
type Call struct {
	Method string
	Port   string
}

// NewFake returns a Fake without ports.
func NewFake() *Fake {
	return &Fake{ports: map[string]Spec{}, faults: map[string][]error{}, unable: map[string]bool{}}
}

// Disable makes the Fake a node that cannot do mode: Setup of a port in
// it fails with ErrNotImplemented, as a Host without the mode's backend.
func (f *Fake) Disable(mode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unable[mode] = true
}

// FailNext makes the next call of method ("Setup", "Teardown" or "List")
// fail with err, changing nothing; errors without a virtplane class are
// reported as ErrUnavailable. Several calls queue up.
func (f *Fake) FailNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[method] = append(f.faults[method], err)
}

// Calls returns the calls made so far, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Port returns the spec of a port and whether it exists.
func (f *Fake) Port(name string) (Spec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.ports[name]
	return s, ok
}

// begin records a call and returns the fault queued for its method.
func (f *Fake) begin(method, port string) error {
	f.calls = append(f.calls, Call{Method: method, Port: port})
	q := f.faults[method]
	if len(q) == 0 {
		return nil
	}
	err := q[0]
	f.faults[method] = q[1:]
	if virtplane.Class(err) == nil {
		err = virtplane.Errorf(virtplane.ErrUnavailable, "injected: %s %s: %v", method, port, err)
	}
	return err
}

// Setup records the spec.
func (f *Fake) Setup(ctx context.Context, s Spec) error {
	s = s.Normalize()
	if err := s.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Setup", s.Name); err != nil {
		return err
	}
	if f.unable[s.Mode] {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "port %s: this node cannot do %s mode", s.Name, s.Mode)
	}
	if prev, ok := f.ports[s.Name]; ok && prev.VMID != s.VMID {
		return conflict(s.Name, prev.VMID, s.VMID)
	}
	for _, other := range f.ports {
		if err := agree(s, other.Normalize()); err != nil {
			return err
		}
	}
	f.ports[s.Name] = s
	return nil
}

// Teardown forgets the port.
func (f *Fake) Teardown(ctx context.Context, name string) error {
	if err := validName("name", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Teardown", name); err != nil {
		return err
	}
	delete(f.ports, name)
	return nil
}

// List returns the ports' specs sorted by name.
func (f *Fake) List(ctx context.Context) ([]Spec, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("List", ""); err != nil {
		return nil, err
	}
	out := make([]Spec, 0, len(f.ports))
	for _, n := range slices.Sorted(maps.Keys(f.ports)) {
		out = append(out, f.ports[n])
	}
	return out, nil
}

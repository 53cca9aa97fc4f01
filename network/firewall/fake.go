package firewall

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/hostnet"
)

// Fake is an in-memory Enforcer: it keeps the last policy of every port,
// records calls, and fails on demand.
type Fake struct {
	mu       sync.Mutex
	policies map[string]Policy
	calls    []string
	failNext error
}

var _ Enforcer = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{policies: map[string]Policy{}} }

// FailNext makes the next Apply or Remove fail with err, changing nothing.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

// Policy returns the policy installed on port.
func (f *Fake) Policy(port string) (Policy, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.policies[port]
	return p, ok
}

// Calls returns the calls made, as "apply vnet3" or "remove vnet3".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *Fake) fail() error {
	err := f.failNext
	f.failNext = nil
	if err != nil && virtplane.Class(err) == nil {
		err = virtplane.Errorf(virtplane.ErrUnavailable, "injected: %v", err)
	}
	return err
}

// Apply records the policy.
func (f *Fake) Apply(ctx context.Context, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "apply "+p.Port)
	if err := f.fail(); err != nil {
		return err
	}
	f.policies[p.Port] = p
	return nil
}

// Remove forgets the port's policy.
func (f *Fake) Remove(ctx context.Context, port string) error {
	if !hostnet.ValidLinkName(port) {
		return invalid("firewall: port %q is not a link name", port)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "remove "+port)
	if err := f.fail(); err != nil {
		return err
	}
	delete(f.policies, port)
	return nil
}

// Ports lists the ports with a policy.
func (f *Fake) Ports(ctx context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.policies)), ctx.Err()
}

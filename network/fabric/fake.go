package fabric

import (
	"context"
	"net/netip"
	"slices"
	"sync"

	"github.com/virtplane/virtplane"
)

// Fake is an in-memory Announcer that records calls and fails on demand.
type Fake struct {
	mu        sync.Mutex
	announced map[netip.Prefix]bool
	calls     []string
	failNext  error
}

var _ Announcer = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{announced: map[netip.Prefix]bool{}} }

// FailNext makes the next call fail with err.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

// Calls returns the calls made, as "announce 10.0.0.5/32".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *Fake) call(ctx context.Context, op string, p netip.Prefix) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Bits() != p.Addr().BitLen() {
		return invalid("%s %v: want a host prefix (/32 or /128)", op, p)
	}
	f.calls = append(f.calls, op+" "+p.String())
	if err := f.failNext; err != nil {
		f.failNext = nil
		if virtplane.Class(err) == nil {
			err = virtplane.Errorf(virtplane.ErrUnavailable, "%s %v: %v", op, p, err)
		}
		return err
	}
	return nil
}

// Announce records an announcement.
func (f *Fake) Announce(ctx context.Context, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "announce", p); err != nil {
		return err
	}
	f.announced[p] = true
	return nil
}

// Withdraw records a withdrawal.
func (f *Fake) Withdraw(ctx context.Context, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "withdraw", p); err != nil {
		return err
	}
	delete(f.announced, p)
	return nil
}

// Announced returns the announced prefixes, sorted.
func (f *Fake) Announced(ctx context.Context) ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]netip.Prefix, 0, len(f.announced))
	for p := range f.announced {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out, ctx.Err()
}

package routing

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/virtplane/virtplane"
)

// Applier makes a host's routed VMs exactly the given list. Router is the
// netlink implementation, Fake the in-memory one; both pass routingtest.Run.
type Applier interface {
	Apply(ctx context.Context, vms []VM) ([]string, error)
}

var (
	_ Applier = (*Router)(nil)
	_ Applier = (*Fake)(nil)
)

// Fake is an in-memory Applier over a fixed set of ports: it keeps the
// routes and gateway ports a Router would, records every list applied and
// fails on demand.
type Fake struct {
	mu       sync.Mutex
	cfg      Config
	ports    map[string]bool
	routes   map[netip.Prefix]string
	gateways map[string]bool
	history  [][]VM
	failNext error
}

// NewFake returns a Fake whose host has the given ports.
func NewFake(cfg Config, ports ...string) *Fake {
	f := &Fake{cfg: cfg, ports: map[string]bool{}, routes: map[netip.Prefix]string{}, gateways: map[string]bool{}}
	for _, p := range ports {
		f.ports[p] = true
	}
	return f
}

// FailNext makes the next Apply fail with err, changing nothing.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

// History returns every list applied successfully.
func (f *Fake) History() [][]VM {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.history)
}

// Routes returns the routed prefixes and their ports.
func (f *Fake) Routes() map[netip.Prefix]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[netip.Prefix]string{}
	for k, v := range f.routes {
		out[k] = v
	}
	return out
}

func (f *Fake) gatewayPrefixes() []netip.Prefix {
	return (&Router{cfg: f.cfg}).gatewayPrefixes()
}

// Apply updates the model.
func (f *Fake) Apply(ctx context.Context, vms []VM) ([]string, error) {
	want, err := desiredRoutes(vms)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, vm := range vms {
		if !f.ports[vm.Port] {
			return nil, virtplane.Errorf(virtplane.ErrNotFound, "routing: port %q: no such link", vm.Port)
		}
	}
	if err := f.failNext; err != nil {
		f.failNext = nil
		if virtplane.Class(err) == nil {
			err = virtplane.Errorf(virtplane.ErrUnavailable, "routing: %v", err)
		}
		return nil, err
	}
	var changes []string
	newPorts := map[string]bool{}
	for _, vm := range vms {
		newPorts[vm.Port] = true
		if !f.gateways[vm.Port] {
			f.gateways[vm.Port] = true
			for _, g := range f.gatewayPrefixes() {
				changes = append(changes, fmt.Sprintf("add gateway %s dev %s", g, vm.Port))
			}
		}
	}
	wanted := map[netip.Prefix]string{}
	for _, w := range want {
		wanted[w.dst] = w.port
		if f.routes[w.dst] != w.port {
			f.routes[w.dst] = w.port
			changes = append(changes, "add route "+w.String())
		}
	}
	for dst, port := range f.routes {
		if _, ok := wanted[dst]; !ok {
			delete(f.routes, dst)
			changes = append(changes, "delete route "+route{dst: dst, port: port}.String())
		}
	}
	for p := range f.gateways {
		if !newPorts[p] {
			delete(f.gateways, p)
			for _, g := range f.gatewayPrefixes() {
				changes = append(changes, fmt.Sprintf("delete gateway %s dev %s", g, p))
			}
		}
	}
	slices.Sort(changes)
	f.history = append(f.history, slices.Clone(vms))
	return changes, nil
}

package port_test

import (
	"context"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/routing"
)

// fakeFDB is an in-memory vxlan.FDB over the links of a hostnet.Fake: the
// entries of each device, by name.
type fakeFDB struct {
	links   *hostnet.Fake
	mu      sync.Mutex
	entries map[string][]netlink.Neigh
}

func newFakeFDB(links *hostnet.Fake) *fakeFDB {
	return &fakeFDB{links: links, entries: map[string][]netlink.Neigh{}}
}

func (f *fakeFDB) LinkByName(name string) (netlink.Link, error) {
	ls, err := f.links.Links(context.Background())
	if err != nil {
		return nil, err
	}
	for i, l := range ls {
		if l.Name == name {
			return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name, Index: i + 1}}, nil
		}
	}
	return nil, netlink.LinkNotFoundError{}
}

func (f *fakeFDB) name(index int) string {
	ls, _ := f.links.Links(context.Background())
	if index < 1 || index > len(ls) {
		return ""
	}
	return ls[index-1].Name
}

func (f *fakeFDB) NeighList(index, _ int) ([]netlink.Neigh, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries[f.name(index)]), nil
}

func (f *fakeFDB) NeighAppend(n *netlink.Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.name(n.LinkIndex)
	f.entries[d] = append(f.entries[d], *n)
	return nil
}

func (f *fakeFDB) NeighDel(n *netlink.Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.name(n.LinkIndex)
	f.entries[d] = slices.DeleteFunc(f.entries[d], func(e netlink.Neigh) bool {
		return e.IP.Equal(n.IP) && e.HardwareAddr.String() == n.HardwareAddr.String()
	})
	return nil
}

// Flood returns the flood destinations of a device.
func (f *fakeFDB) Flood(device string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.entries[device] {
		out = append(out, e.IP.String())
	}
	slices.Sort(out)
	return out
}

// fakeRoutes gives the Host a routing.Fake over the links that exist at
// each Apply (a Router looks the ports up each time, too) and keeps what
// was applied, by gateway configuration.
type fakeRoutes struct {
	links   *hostnet.Fake
	mu      sync.Mutex
	applied map[routing.Config][]routing.VM
}

func newFakeRoutes(links *hostnet.Fake) *fakeRoutes {
	return &fakeRoutes{links: links, applied: map[routing.Config][]routing.VM{}}
}

func (r *fakeRoutes) factory(cfg routing.Config) (routing.Applier, error) {
	return routeRecorder{r, cfg}, nil
}

type routeRecorder struct {
	r   *fakeRoutes
	cfg routing.Config
}

func (rr routeRecorder) Apply(ctx context.Context, vms []routing.VM) ([]string, error) {
	ls, err := rr.r.links.Links(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Name)
	}
	changes, err := routing.NewFake(rr.cfg, names...).Apply(ctx, vms)
	if err != nil {
		return changes, err
	}
	rr.r.mu.Lock()
	defer rr.r.mu.Unlock()
	rr.r.applied[rr.cfg] = slices.Clone(vms)
	return changes, nil
}

// Applied returns the last list applied with the gateway configuration.
func (r *fakeRoutes) Applied(cfg routing.Config) []routing.VM {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied[cfg]
}

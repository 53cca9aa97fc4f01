package daemon

import (
	"context"
	"sync"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// Simulated nodes have no hardware to read: what they report unless the
// operator says otherwise.
const (
	simCores     = 8
	simMemoryMiB = 16384
	simDiskGiB   = 200
)

// simKind is the simulated node, address "sim": the fakes, with their
// records in Config.SimStore (simnode).
// SimAddress is the address of a simulated node.
const SimAddress = "sim"

func (s *Server) simKind() node.Kind {
	facts := func(context.Context) (node.Facts, error) {
		return node.Facts{Cores: simCores, MemoryMiB: simMemoryMiB, DiskGiB: simDiskGiB, Hostname: "sim", Nominal: true}, nil
	}
	return node.Kind{
		Name: "sim", Forms: "sim (a simulated node)",
		Parse: func(_, raw string) (any, string, bool, error) { return nil, "", raw == SimAddress, nil },
		Prepare: func(ctx context.Context, _ string, _ node.Address, _ string, _ node.Credentials) (node.Facts, error) {
			return facts(ctx)
		},
		Open: func(ctx context.Context, t node.Target) (*node.Backend, error) {
			drv, err := simnode.Open(ctx, s.cfg.SimStore, t.Node.ID)
			if err != nil {
				return nil, err
			}
			for method, d := range s.cfg.SimLatency {
				drv.SetLatency(method, d)
			}
			pool, err := simnode.OpenStorage(ctx, s.cfg.SimStore, t.Node.ID)
			if err != nil {
				return nil, err
			}
			ports, err := simnode.OpenPorts(ctx, s.cfg.SimStore, t.Node.ID)
			if err != nil {
				return nil, err
			}
			own := func(context.Context) (storage.Pool, error) { return pool, nil }
			named := struct {
				mu    sync.Mutex
				pools map[string]*simnode.Storage
			}{pools: map[string]*simnode.Storage{}}
			return &node.Backend{
				Simulated: true, VMM: drv, Ports: ports, Exec: simnode.Executor{}, Facts: facts, Handle: drv,
				// A simulated node has a pool of its own and one per storage
				// of its cluster, each kept in the store.
				OwnPool: own,
				Pool: func(ctx context.Context, ref model.StorageRef) (storage.Pool, error) {
					named.mu.Lock()
					defer named.mu.Unlock()
					if p, ok := named.pools[ref.Name]; ok {
						return p, nil
					}
					p, err := simnode.OpenNamedStorage(ctx, s.cfg.SimStore, t.Node.ID, ref.Name)
					if err != nil {
						return nil, err
					}
					named.pools[ref.Name] = p
					return p, nil
				},
				MigrateTo: func(_ context.Context, dst *node.Backend) (vmm.MigrationTarget, error) {
					peer, ok := dst.Handle.(*simnode.Node)
					if !ok {
						return vmm.MigrationTarget{}, virtplane.Errorf(virtplane.ErrNotImplemented, "live migration from a simulated node to a %s node", dst.Kind)
					}
					uri := "sim://" + peer.ID()
					drv.AddPeer(uri, peer)
					return vmm.MigrationTarget{URI: uri}, nil
				},
			}, nil
		},
	}
}

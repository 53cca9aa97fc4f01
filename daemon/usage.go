package daemon

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/metrics"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/vmm"
)

// usageSource answers the metrics' inventory from the store and asks each
// node's driver (vmm.UsageReporter) what its VMs use.
type usageSource struct{ s *Server }

func listAll[T any](ctx context.Context, st store.Reader, kind store.Kind) ([]T, error) {
	var out []T
	after := ""
	for {
		objs, err := st.ListObjects(ctx, kind, store.ListOptions{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			var v T
			if err := json.Unmarshal(o.Data, &v); err != nil {
				return nil, virtplane.Errorf(virtplane.ErrUnavailable, "stored %s %s is unreadable: %v", kind, o.ID, err)
			}
			out = append(out, v)
		}
		if len(objs) < 1000 {
			return out, nil
		}
		after = objs[len(objs)-1].ID
	}
}

func (u usageSource) Inventory(ctx context.Context) (metrics.Inventory, error) {
	st := u.s.cfg.Store
	clusters, err := listAll[model.Cluster](ctx, st, store.KindCluster)
	if err != nil {
		return metrics.Inventory{}, err
	}
	nodes, err := listAll[model.Node](ctx, st, store.KindNode)
	if err != nil {
		return metrics.Inventory{}, err
	}
	vms, err := listAll[model.VM](ctx, st, store.KindVM)
	if err != nil {
		return metrics.Inventory{}, err
	}
	byNode := map[string][]model.VM{}
	byState := map[string]map[string]int{}
	for _, vm := range vms {
		if vm.NodeID != "" {
			byNode[vm.NodeID] = append(byNode[vm.NodeID], vm)
		}
		if byState[vm.ClusterID] == nil {
			byState[vm.ClusterID] = map[string]int{}
		}
		byState[vm.ClusterID][vm.State]++
	}
	inv := metrics.Inventory{}
	index := map[string]int{}
	for _, c := range clusters {
		index[c.ID] = len(inv.Clusters)
		cu := metrics.ClusterUsage{ID: c.ID, Name: c.Name, CPUOvercommit: c.CPUOvercommit,
			RAMOvercommit: c.RAMOvercommit, DiskOvercommit: c.DiskOvercommit, VMsByState: byState[c.ID]}
		// A scrape asks only the nodes that are connected already.
		for _, su := range u.s.storageUsage(ctx, c, nodes, vms, true) {
			cu.Storages = append(cu.Storages, metrics.StorageUsage{Storage: su.Storage, Driver: su.Driver, Node: su.Node,
				Capacity: su.CapacityBytes, Used: su.UsedBytes, Allocated: su.AllocatedBytes, VMs: su.VMs, Err: su.Error})
		}
		inv.Clusters = append(inv.Clusters, cu)
	}
	for _, n := range nodes {
		i, ok := index[n.ClusterID]
		if !ok {
			continue
		}
		nu := metrics.NodeUsage{ID: n.ID, Name: n.Name, State: n.State, Cores: n.Cores, MemoryMiB: n.MemoryMiB, DiskGiB: n.DiskGiB}
		nu.UsageErr = u.node(ctx, n, clusters[i], byNode[n.ID], &nu)
		inv.Clusters[i].Nodes = append(inv.Clusters[i].Nodes, nu)
	}
	return inv, nil
}

// node fills the usage of the VMs on node n; a driver that cannot be
// reached or reports no usage is the error (the VMs are still listed).
func (u usageSource) node(ctx context.Context, n model.Node, c model.Cluster, vms []model.VM, nu *metrics.NodeUsage) error {
	for _, vm := range vms {
		nu.VMs = append(nu.VMs, metrics.VMUsage{ID: vm.ID, Name: vm.Name, State: vm.State, CPUs: vm.CPUs, MemoryMiB: vm.MemoryMiB, DiskGiB: vm.TotalDiskGiB()})
	}
	var d vmm.Driver
	if u.s.remoteNode(n) {
		// A scrape does not dial a remote node; it reports one already open.
		u.s.mu.Lock()
		e, ok := u.s.backends[n.ID]
		u.s.mu.Unlock()
		if !ok {
			return virtplane.Errorf(virtplane.ErrUnavailable, "node %s is not connected yet", n.Name)
		}
		d = e.b.VMM
	} else {
		b, err := u.s.Backend(ctx, n, c)
		if err != nil {
			return err
		}
		d = b.VMM
	}
	rep, ok := vmm.As[vmm.UsageReporter](d)
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: its driver reports no usage", n.Name)
	}
	for i := range nu.VMs {
		vu, err := rep.Usage(ctx, flow.DomainName(nu.VMs[i].ID))
		switch {
		case err == nil:
			nu.VMs[i].Reported, nu.VMs[i].Usage = true, vu
		case errors.Is(err, virtplane.ErrNotFound), errors.Is(err, virtplane.ErrConflict):
			// not defined there (yet) or not running: no counters
		default:
			return err
		}
	}
	return nil
}

package flow

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/virtplane/virtplane/scheduler"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// Invalidate drops what the flows remember of a cluster (placement state,
// the cluster and its nodes) after its settings or nodes changed; the next
// task reads them from the store again.
func (f *Flow) Invalidate(clusterID string) {
	f.mu.Lock()
	delete(f.scheds, clusterID)
	delete(f.clusters, clusterID)
	for id, n := range f.nodes {
		if n.ClusterID == clusterID {
			delete(f.nodes, id)
		}
	}
	f.mu.Unlock()
}

// Lead is the engine's OnLead: on taking the placement lead it forgets all
// placement state (another daemon placed meanwhile); while leading, it
// forgets that of the clusters whose settings or nodes changed in the
// store since it last looked, as they do when changed through another
// daemon's API.
func (f *Flow) Lead(ctx context.Context, took bool) {
	digests, err := f.clusterDigests(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if took || err != nil {
		clear(f.scheds)
		clear(f.clusters)
		clear(f.nodes)
		if err == nil {
			f.digests = digests
		} else {
			f.digests = nil
		}
		return
	}
	for id, d := range digests {
		if f.digests[id] != d {
			delete(f.scheds, id)
			delete(f.clusters, id)
			for nid, n := range f.nodes {
				if n.ClusterID == id {
					delete(f.nodes, nid)
				}
			}
		}
	}
	f.digests = digests
}

// clusterDigests returns, by cluster, a digest of the versions of the
// cluster and its nodes.
func (f *Flow) clusterDigests(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	mix := func(id string, o store.Object) {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%d", o.ID, o.Version)
		out[id] ^= h.Sum64()
	}
	for _, kind := range []store.Kind{store.KindCluster, store.KindNode} {
		after := ""
		for {
			objs, err := f.cfg.Store.ListObjects(ctx, kind, store.ListOptions{After: after, Limit: 1000})
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				id := o.ID
				if kind == store.KindNode {
					id = o.Parent
				}
				mix(id, o)
			}
			if len(objs) < 1000 {
				break
			}
			after = objs[len(objs)-1].ID
		}
	}
	return out, nil
}

// schedulerFor returns the cluster's scheduler, building it from the store:
// the cluster's rules, its nodes, and the VMs placed on them. The caller
// holds f.mu.
func (f *Flow) schedulerFor(ctx context.Context, clusterID string) (*scheduler.Scheduler, error) {
	if s, ok := f.scheds[clusterID]; ok {
		return s, nil
	}
	s, err := f.buildScheduler(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	f.scheds[clusterID] = s
	return s, nil
}

// buildScheduler makes a scheduler of a cluster from the store.
func (f *Flow) buildScheduler(ctx context.Context, clusterID string) (*scheduler.Scheduler, error) {
	c, err := load[model.Cluster](ctx, f.cfg.Store, store.KindCluster, clusterID)
	if err != nil {
		return nil, err
	}
	snap := scheduler.Cluster{Settings: scheduler.Settings{
		Strategy: scheduler.Strategy(c.Strategy), CPURatio: c.CPUOvercommit, RAMRatio: c.RAMOvercommit,
		MaxVMs: c.MaxVMs, MaxVMsPerNode: c.MaxVMsPerNode,
	}}
	if err := forEach(ctx, f.cfg.Store, store.KindNode, store.ListOptions{Parent: clusterID}, func(n model.Node) error {
		st := scheduler.NodeActive
		if n.Maintenance {
			st = scheduler.NodeMaintenance
		}
		snap.Nodes = append(snap.Nodes, scheduler.Node{ID: n.ID, State: st, Cores: n.Cores, RAM: n.MemoryMiB << 20})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := forEach(ctx, f.cfg.Store, store.KindVM, store.ListOptions{}, func(vm model.VM) error {
		if vm.ClusterID == clusterID && vm.NodeID != "" {
			snap.VMs = append(snap.VMs, scheduler.VM{ID: vm.ID, Node: vm.NodeID, Request: request(vm)})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return scheduler.New(snap)
}

func request(vm model.VM) scheduler.Request {
	r := scheduler.Request{VCPUs: vm.CPUs, RAM: vm.MemoryMiB << 20}
	if aa := vm.AntiAffinity; aa != nil {
		// Groups are the owner's: another user's group of the same name
		// neither repels nor is repelled.
		r.AntiAffinity = scheduler.AntiAffinity{Group: vm.Owner + "/" + aa.Group, Hard: aa.Hard}
	}
	return r
}

// releaseReservation gives back a create's reservation.
func (f *Flow) releaseReservation(a vmArgs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.pending[a.VMID]
	if !ok {
		return nil // never reserved, or reserved by a daemon run that died: its reservations died with it
	}
	delete(f.pending, a.VMID)
	cluster := a.ClusterID
	if c, ok := f.pendingCluster[a.VMID]; ok {
		cluster = c // a move to another cluster reserved there
		delete(f.pendingCluster, a.VMID)
	}
	if s, ok := f.scheds[cluster]; ok {
		if err := s.Release(id); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
	}
	return nil
}

// commitReservation turns a create's (or a migration's) reservation into a
// placed VM; a migrated VM leaves its old node.
func (f *Flow) commitReservation(vm model.VM) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.pending[vm.ID]
	if !ok {
		return
	}
	delete(f.pending, vm.ID)
	delete(f.pendingCluster, vm.ID)
	if s, ok := f.scheds[vm.ClusterID]; ok {
		_ = s.RemoveVM(vm.ID)
		_ = s.Commit(id, vm.ID)
	}
}

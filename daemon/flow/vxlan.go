package flow

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	netport "github.com/virtplane/virtplane/network/port"
)

// KindClusterFloodSync brings the flood lists of a vxlan cluster's VM ports
// to the cluster's nodes as they are now (after a node was added or
// removed, or its vtep address changed).
const KindClusterFloodSync = "cluster.vxlan.sync"

// ClusterInput is the input of the cluster tasks.
type ClusterInput struct {
	ClusterID string `json:"cluster_id"`
}

// FloodSyncSubmission is the task that syncs the flood lists of cluster
// clusterID, started by owner: submit it (Engine.SubmitTx) in the
// transaction that changes the cluster's nodes. The tasks of one cluster
// queue behind each other.
func FloodSyncSubmission(clusterID, owner string) tasks.Submission {
	return tasks.Submission{Kind: KindClusterFloodSync, Owner: owner, Target: "cluster/" + clusterID,
		Resources: []string{"cluster/" + clusterID + "/vxlan"}, Input: ClusterInput{ClusterID: clusterID}}
}

// syncFlood is the handler of KindClusterFloodSync. It reads the cluster,
// its nodes and its VMs from the store when it runs, not when it was
// submitted, and sets up again each VXLAN port of the cluster's VMs whose
// peers differ from the vtep addresses of the other nodes: a Ports keeps
// a VNI's flood list as the union of its ports' peers, so once every port
// of a node names the new set, the node floods to exactly it. The new
// spec is what the node records, so List and a restart agree with it.
//
// Nothing is undone on failure (the cluster's change is committed; going
// back to the old peers would be wrong): the nodes that could be reached
// are brought up to date, the task then fails naming the others, and
// running it again finishes the job (ports already up to date are left
// alone).
func (f *Flow) syncFlood(ctx context.Context, r *tasks.Run) error {
	var in ClusterInput
	if err := r.Input(&in); err != nil {
		return err
	}
	c, err := load[model.Cluster](ctx, f.cfg.Store, store.KindCluster, in.ClusterID)
	if err != nil {
		return err
	}
	if c.NetworkMode != model.NetworkVXLAN {
		return r.Log(ctx, fmt.Sprintf("cluster %s is in %s mode: no flood lists", c.Name, c.NetworkMode))
	}
	nodes, err := f.clusterNodes(ctx, c)
	if err != nil {
		return err
	}
	vmsByNode := map[string]map[string]model.VM{}
	if err := forEach(ctx, f.cfg.Store, store.KindVM, store.ListOptions{}, func(vm model.VM) error {
		if vm.ClusterID == c.ID && vm.NodeID != "" {
			if vmsByNode[vm.NodeID] == nil {
				vmsByNode[vm.NodeID] = map[string]model.VM{}
			}
			vmsByNode[vm.NodeID][vm.ID] = vm
		}
		return nil
	}); err != nil {
		return err
	}
	var failed []string
	var first error
	for i, n := range nodes {
		vms := vmsByNode[n.ID]
		if len(vms) == 0 {
			continue // no port of the cluster here
		}
		var changed int
		err := r.Step(ctx, fmt.Sprintf("sync flood list of node %s", n.Name), tasks.NoUndo, func(ctx context.Context) error {
			var err error
			changed, err = f.syncNodeFlood(ctx, c, n, nodes, vms)
			return err
		})
		if err != nil {
			if virtplane.Class(err) == virtplane.ErrCanceled {
				return err
			}
			failed = append(failed, fmt.Sprintf("node %s (%s): %v", n.Name, n.ID, err))
			if first == nil {
				first = err
			}
		} else if changed > 0 {
			if err := r.Log(ctx, fmt.Sprintf("node %s: %d ports now flood to the cluster's %d other nodes", n.Name, changed, len(nodes)-1)); err != nil {
				return err
			}
		}
		_ = r.Progress(ctx, (i+1)*100/len(nodes), "")
	}
	if len(failed) > 0 {
		class := virtplane.Class(first)
		if class == nil {
			class = virtplane.ErrUnavailable
		}
		return virtplane.Errorf(class, "vxlan cluster %s: flood lists of %d nodes not brought up to date (run the sync again once they are reachable): %s",
			c.Name, len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// syncNodeFlood sets up again the VXLAN ports of vms on node n whose
// tunnel settings differ from the cluster's now; it returns how many.
func (f *Flow) syncNodeFlood(ctx context.Context, c model.Cluster, n model.Node, nodes []model.Node, vms map[string]model.VM) (int, error) {
	ports, err := f.nodePorts(ctx, n.ID)
	if err != nil {
		return 0, err
	}
	all, err := ports.List(ctx)
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, port := range all {
		vm, ok := vms[port.VMID]
		if !ok || port.Mode != netport.ModeVXLAN || port.Name != PortName(vm.ID) {
			continue
		}
		want, err := portSpec(vm, c, n, nodes)
		if err != nil {
			return changed, err
		}
		next := port
		next.VXLAN, next.Bridge = want.VXLAN, want.Bridge
		if next.Equal(port) {
			continue
		}
		if err := ports.Setup(ctx, next); err != nil {
			return changed, fmt.Errorf("port %s of vm %s: %w", port.Name, vm.ID, err)
		}
		changed++
	}
	return changed, nil
}

// vxlanOf is a VXLAN port's tunnel settings brought to the cluster's nodes
// as they are in the store now (see portOf).
func (f *Flow) vxlanOf(ctx context.Context, vm model.VM, port netport.Spec) (netport.Spec, error) {
	if port.Mode != netport.ModeVXLAN {
		return port, nil
	}
	c, err := load[model.Cluster](ctx, f.cfg.Store, store.KindCluster, vm.ClusterID)
	if err != nil {
		return port, err
	}
	nodes, err := f.clusterNodes(ctx, c)
	if err != nil {
		return port, err
	}
	i := slices.IndexFunc(nodes, func(n model.Node) bool { return n.ID == vm.NodeID })
	if i < 0 {
		return port, nil // not a node of the cluster: nothing to bring it to
	}
	want, err := portSpec(vm, c, nodes[i], nodes)
	if err != nil {
		return port, err
	}
	port.VXLAN, port.Bridge = want.VXLAN, want.Bridge
	return port, nil
}

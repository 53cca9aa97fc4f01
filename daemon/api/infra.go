package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/network/ipam"
)

// ClusterBody is what a client sets on a cluster.
type ClusterBody struct {
	Name           string             `json:"name" minLength:"1" maxLength:"63"`
	VirtType       string             `json:"virt_type" enum:"kvm,lxd" default:"kvm"`
	Strategy       string             `json:"strategy" enum:"even,sequential" default:"even"`
	CPUOvercommit  float64            `json:"cpu_overcommit" minimum:"1" maximum:"64" default:"1"`
	RAMOvercommit  float64            `json:"ram_overcommit" minimum:"1" maximum:"8" default:"1"`
	DiskOvercommit float64            `json:"disk_overcommit" minimum:"1" maximum:"16" default:"1"`
	MaxVMs         int                `json:"max_vms" minimum:"0"`
	MaxVMsPerNode  int                `json:"max_vms_per_node" minimum:"0"`
	NetworkMode    string             `json:"network_mode" enum:"bridge,vxlan,routed" default:"bridge"`
	Bridge         string             `json:"bridge,omitempty" maxLength:"15"`
	VNI            int                `json:"vni,omitempty" minimum:"0" maximum:"16777215" doc:"VxLAN network identifier (vxlan mode: required, 1..16777215)"`
	Storages       []model.StorageRef `json:"storages,omitempty"`
}

func (b ClusterBody) apply(c *model.Cluster) error {
	if err := model.ValidName("name", b.Name); err != nil {
		return field("body.name", err)
	}
	seen := map[string]bool{}
	for i, st := range b.Storages {
		if err := model.ValidName("storage name", st.Name); err != nil || seen[st.Name] {
			if err == nil {
				err = virtplane.Errorf(virtplane.ErrInvalidArgument, "storage %q appears twice", st.Name)
			}
			return field("body.storages["+itoa(i)+"].name", err)
		}
		seen[st.Name] = true
	}
	c.Name, c.VirtType, c.Strategy = b.Name, b.VirtType, b.Strategy
	c.CPUOvercommit, c.RAMOvercommit, c.DiskOvercommit = b.CPUOvercommit, b.RAMOvercommit, b.DiskOvercommit
	c.MaxVMs, c.MaxVMsPerNode, c.NetworkMode, c.Bridge, c.VNI = b.MaxVMs, b.MaxVMsPerNode, b.NetworkMode, b.Bridge, b.VNI
	if err := c.ValidateNetwork(); err != nil {
		return modelField(err)
	}
	c.Storages = b.Storages
	if c.Storages == nil {
		c.Storages = []model.StorageRef{}
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }

// modelField places a model validation error at its body field.
func modelField(err error) error {
	var fe *model.FieldError
	if errors.As(err, &fe) {
		return field("body."+fe.Field, err)
	}
	return err
}

func (s *Server) registerClusters() {
	tags := []string{"clusters"}
	huma.Register(s.api, huma.Operation{
		OperationID: "listClusters", Method: http.MethodGet, Path: "/v1/clusters", Tags: tags, Summary: "List clusters",
	}, func(ctx context.Context, in *PageInput) (*struct{ Body Page[model.Cluster] }, error) {
		p, err := listObjects[model.Cluster](ctx, s.st, store.KindCluster, store.ListOptions{After: in.After, Limit: in.Limit}, nil)
		return &struct{ Body Page[model.Cluster] }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getCluster", Method: http.MethodGet, Path: "/v1/clusters/{id}", Tags: tags, Summary: "Get a cluster",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body model.Cluster }, error) {
		c, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, in.ID, "path.id")
		return &struct{ Body model.Cluster }{c}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createCluster", Method: http.MethodPost, Path: "/v1/clusters", Tags: tags,
		Summary: "Create a cluster (admin)", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct{ Body ClusterBody }) (*struct{ Body model.Cluster }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		c := model.Cluster{ID: store.NewID(), Created: time.Now().UTC()}
		if err := in.Body.apply(&c); err != nil {
			return nil, problem(err)
		}
		data, err := encode(c)
		if err != nil {
			return nil, problem(err)
		}
		err = s.st.Update(ctx, func(tx store.Tx) error {
			return field("body.name", tx.CreateObject(ctx, &store.Object{Kind: store.KindCluster, ID: c.ID, Name: c.Name, Data: data}))
		})
		if err != nil {
			return nil, problem(err)
		}
		s.publish("cluster", "created", c.ID, "", "")
		return &struct{ Body model.Cluster }{c}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "updateCluster", Method: http.MethodPut, Path: "/v1/clusters/{id}", Tags: tags,
		Summary: "Change a cluster's settings (admin); placement rules apply to new VMs",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body ClusterBody
	}) (*struct{ Body model.Cluster }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		var c model.Cluster
		err := s.st.Update(ctx, func(tx store.Tx) error {
			var o store.Object
			var err error
			if c, o, err = getObject[model.Cluster](ctx, tx, store.KindCluster, in.ID, "path.id"); err != nil {
				return err
			}
			if c.VirtType != in.Body.VirtType {
				return field("body.virt_type", virtplane.Errorf(virtplane.ErrConflict, "virtualization type of a cluster cannot change"))
			}
			old := c
			if err := in.Body.apply(&c); err != nil {
				return err
			}
			if err := networkChange(ctx, tx, old, c); err != nil {
				return err
			}
			if o.Data, err = encode(c); err != nil {
				return err
			}
			o.Name = c.Name
			return field("body.name", tx.UpdateObject(ctx, &o))
		})
		if err != nil {
			return nil, problem(err)
		}
		s.cfg.Invalidate(c.ID)
		s.publish("cluster", "changed", c.ID, "", "")
		return &struct{ Body model.Cluster }{c}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "deleteCluster", Method: http.MethodDelete, Path: "/v1/clusters/{id}", Tags: tags,
		Summary: "Delete an empty cluster (admin)", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		err := s.st.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.GetObject(ctx, store.KindCluster, in.ID); err != nil {
				return field("path.id", err)
			}
			n, err := tx.CountObjects(ctx, store.KindNode, store.ListOptions{Parent: in.ID})
			if err != nil {
				return err
			}
			if n > 0 {
				return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "cluster %s has %d nodes", in.ID, n))
			}
			return tx.DeleteObject(ctx, store.KindCluster, in.ID, 0)
		})
		if err == nil {
			s.publish("cluster", "deleted", in.ID, "", "")
		}
		return nil, problem(err)
	})
}

// NodeBody adds a node.
type NodeBody struct {
	ClusterID string `json:"cluster_id" minLength:"1"`
	Name      string `json:"name" minLength:"1" maxLength:"63"`
	Address   string `json:"address" doc:"local (this host's libvirtd), sim (a simulated node), qemu+unix:///system?socket=PATH[&migration_address=IP] (a libvirtd on this host by its socket; its disks in a file pool under the daemon's data directory, or in the cluster's file storage), ssh://USER@HOST[:PORT][?socket=PATH][&agent=PATH][&netns=NAME] (a node on another machine reached over SSH: its libvirtd socket, the virtplaned binary there that makes network ports, their network namespace), or host:port of a node agent (not implemented)" default:"local"`
	Cores     int    `json:"cores" minimum:"1" maximum:"4096"`
	MemoryMiB int64  `json:"memory_mib" minimum:"256"`
	DiskGiB   int64  `json:"disk_gib" minimum:"1"`
	// VTEPAddress is the node's VxLAN underlay address.
	VTEPAddress string `json:"vtep_address,omitempty" doc:"underlay address of the node's VxLAN tunnel endpoint; required in a vxlan cluster"`
}

func (s *Server) registerNodes() {
	tags := []string{"nodes"}
	type listNodes struct {
		PageInput
		ClusterID string `query:"cluster_id"`
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "listNodes", Method: http.MethodGet, Path: "/v1/nodes", Tags: tags, Summary: "List nodes (admin)",
	}, func(ctx context.Context, in *listNodes) (*struct{ Body Page[model.Node] }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		p, err := listObjects[model.Node](ctx, s.st, store.KindNode, store.ListOptions{Parent: in.ClusterID, After: in.After, Limit: in.Limit}, nil)
		return &struct{ Body Page[model.Node] }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getNode", Method: http.MethodGet, Path: "/v1/nodes/{id}", Tags: tags, Summary: "Get a node (admin)",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body model.Node }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		n, _, err := getObject[model.Node](ctx, s.st, store.KindNode, in.ID, "path.id")
		return &struct{ Body model.Node }{n}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "addNode", Method: http.MethodPost, Path: "/v1/nodes", Tags: tags,
		Summary: "Add a node to a cluster (admin)", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct{ Body NodeBody }) (*struct{ Body model.Node }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		b := in.Body
		if err := model.ValidName("name", b.Name); err != nil {
			return nil, problem(field("body.name", err))
		}
		_, libvirtHere, err := model.ParseLibvirtAddress("address", b.Address)
		if err != nil {
			return nil, problem(field("body.address", err))
		}
		_, overSSH, err := model.ParseSSHAddress("address", b.Address)
		if err != nil {
			return nil, problem(field("body.address", err))
		}
		switch {
		case b.Address == "local", b.Address == "sim", libvirtHere, overSSH:
		default:
			if _, _, err := splitHostPort(b.Address); err != nil {
				return nil, problem(field("body.address", err))
			}
			return nil, problem(field("body.address", virtplane.Errorf(virtplane.ErrNotImplemented, "remote node agents (%s)", b.Address)))
		}
		n := model.Node{ID: store.NewID(), ClusterID: b.ClusterID, Name: b.Name, Address: b.Address, State: model.NodeActive,
			Cores: b.Cores, MemoryMiB: b.MemoryMiB, DiskGiB: b.DiskGiB, VTEPAddress: b.VTEPAddress, Created: time.Now().UTC()}
		if b.VTEPAddress != "" {
			if _, err := n.VTEP(); err != nil {
				return nil, problem(modelField(err))
			}
		}
		data, err := encode(n)
		if err != nil {
			return nil, problem(err)
		}
		var sync *store.Task
		err = s.st.Update(ctx, func(tx store.Tx) error {
			c, _, err := getObject[model.Cluster](ctx, tx, store.KindCluster, b.ClusterID, "body.cluster_id")
			if err != nil {
				return err
			}
			if c.NetworkMode == model.NetworkVXLAN {
				if err := vtepFits(ctx, tx, n); err != nil {
					return err
				}
			}
			if err := field("body.name", tx.CreateObject(ctx, &store.Object{Kind: store.KindNode, ID: n.ID, Name: n.Name, Parent: n.ClusterID, Data: data})); err != nil {
				return err
			}
			sync, err = s.submitFloodSync(ctx, tx, c)
			return err
		})
		if err != nil {
			return nil, problem(err)
		}
		s.cfg.Invalidate(n.ClusterID)
		s.publish("node", "created", n.ID, "", n.State)
		s.floodSyncSubmitted(sync)
		return &struct{ Body model.Node }{n}, nil
	})
	type maintenance struct {
		IDInput
		Body struct {
			Enabled bool `json:"enabled" doc:"true: the node takes no new VMs"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "setNodeMaintenance", Method: http.MethodPost, Path: "/v1/nodes/{id}/maintenance", Tags: tags,
		Summary: "Put a node into maintenance (no new VMs) or back (admin)",
	}, func(ctx context.Context, in *maintenance) (*struct{ Body model.Node }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		var n model.Node
		err := s.st.Update(ctx, func(tx store.Tx) error {
			var o store.Object
			var err error
			if n, o, err = getObject[model.Node](ctx, tx, store.KindNode, in.ID, "path.id"); err != nil {
				return err
			}
			n.Maintenance = in.Body.Enabled
			n.State = model.NodeActive
			if n.Maintenance {
				n.State = model.NodeMaintenance
			}
			if o.Data, err = encode(n); err != nil {
				return err
			}
			return tx.UpdateObject(ctx, &o)
		})
		if err != nil {
			return nil, problem(err)
		}
		s.cfg.Invalidate(n.ClusterID)
		s.publish("node", "changed", n.ID, "", n.State)
		return &struct{ Body model.Node }{n}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "removeNode", Method: http.MethodDelete, Path: "/v1/nodes/{id}", Tags: tags,
		Summary: "Remove a node without VMs (admin)", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		var sync *store.Task
		err := s.st.Update(ctx, func(tx store.Tx) error {
			no, err := tx.GetObject(ctx, store.KindNode, in.ID)
			if err != nil {
				return field("path.id", err)
			}
			defer s.cfg.Invalidate(no.Parent)
			if n, err := countVMs(ctx, tx, func(vm model.VM) bool { return vm.NodeID == in.ID }); err != nil || n > 0 {
				if err == nil {
					err = field("path.id", virtplane.Errorf(virtplane.ErrConflict, "node %s hosts %d VMs", in.ID, n))
				}
				return err
			}
			if err := tx.DeleteObject(ctx, store.KindNode, in.ID, 0); err != nil {
				return err
			}
			c, _, err := getObject[model.Cluster](ctx, tx, store.KindCluster, no.Parent, "path.id")
			if err != nil {
				return err
			}
			sync, err = s.submitFloodSync(ctx, tx, c)
			return err
		})
		if err == nil {
			s.publish("node", "deleted", in.ID, "", "")
			s.floodSyncSubmitted(sync)
		}
		return nil, problem(err)
	})
	type vtepInput struct {
		IDInput
		Body struct {
			VTEPAddress string `json:"vtep_address" doc:"the node's new VxLAN underlay address; empty for none (not in a vxlan cluster)"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "setNodeVTEP", Method: http.MethodPut, Path: "/v1/nodes/{id}/vtep", Tags: tags,
		Summary: "Change a node's vtep address (admin); in a vxlan cluster only while the node hosts no VM, and the other nodes' VMs then flood to the new address (a cluster.vxlan.sync task)",
	}, func(ctx context.Context, in *vtepInput) (*struct{ Body model.Node }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		var n model.Node
		var sync *store.Task
		err := s.st.Update(ctx, func(tx store.Tx) error {
			var o store.Object
			var err error
			if n, o, err = getObject[model.Node](ctx, tx, store.KindNode, in.ID, "path.id"); err != nil {
				return err
			}
			c, _, err := getObject[model.Cluster](ctx, tx, store.KindCluster, n.ClusterID, "path.id")
			if err != nil {
				return err
			}
			if n.VTEPAddress == in.Body.VTEPAddress {
				return nil
			}
			n.VTEPAddress = in.Body.VTEPAddress
			if _, err := n.VTEP(); err != nil && (n.VTEPAddress != "" || c.NetworkMode == model.NetworkVXLAN) {
				return field("body.vtep_address", err)
			}
			if c.NetworkMode == model.NetworkVXLAN {
				if err := vtepFits(ctx, tx, n); err != nil {
					return err
				}
				// The node's ports all carry its vtep as their local end, one
				// device per VNI uses it: they change together only with the
				// VMs gone (migrated away or stopped and moved).
				if k, err := countVMs(ctx, tx, func(vm model.VM) bool { return vm.NodeID == n.ID }); err != nil || k > 0 {
					if err == nil {
						err = field("body.vtep_address", virtplane.Errorf(virtplane.ErrConflict, "node %s hosts %d VMs of vxlan cluster %s: their tunnel's local end cannot change under them; migrate them away first", n.Name, k, c.Name))
					}
					return err
				}
			}
			if o.Data, err = encode(n); err != nil {
				return err
			}
			if err := tx.UpdateObject(ctx, &o); err != nil {
				return err
			}
			sync, err = s.submitFloodSync(ctx, tx, c)
			return err
		})
		if err != nil {
			return nil, problem(err)
		}
		s.cfg.Invalidate(n.ClusterID)
		s.publish("node", "changed", n.ID, "", n.State)
		s.floodSyncSubmitted(sync)
		return &struct{ Body model.Node }{n}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "syncClusterFlood", Method: http.MethodPost, Path: "/v1/clusters/{id}/vxlan-sync", Tags: []string{"clusters"},
		Summary:       "Bring the flood lists of a vxlan cluster's VMs to its nodes (admin): again after a sync task failed on an unreachable node",
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *IDInput) (*struct{ Body TaskView }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		var sync *store.Task
		err := s.st.Update(ctx, func(tx store.Tx) error {
			c, _, err := getObject[model.Cluster](ctx, tx, store.KindCluster, in.ID, "path.id")
			if err != nil {
				return err
			}
			if c.NetworkMode != model.NetworkVXLAN {
				return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "cluster %s is in %s mode: it has no flood lists", c.Name, c.NetworkMode))
			}
			sync, err = s.submitFloodSync(ctx, tx, c)
			return err
		})
		if err != nil {
			return nil, problem(err)
		}
		s.floodSyncSubmitted(sync)
		return &struct{ Body TaskView }{viewTask(*sync)}, nil
	})
}

// vtepFits checks the vtep address of node n of a vxlan cluster: valid,
// of the family of the other nodes' (a tunnel has one), and not another
// node's (the nodes would flood to themselves).
func vtepFits(ctx context.Context, tx store.Tx, n model.Node) error {
	a, err := n.VTEP()
	if err != nil {
		return modelField(err)
	}
	objs, err := tx.ListObjects(ctx, store.KindNode, store.ListOptions{Parent: n.ClusterID})
	if err != nil {
		return err
	}
	for _, o := range objs {
		other, err := decode[model.Node](o)
		if err != nil {
			return err
		}
		b, err := other.VTEP()
		if other.ID == n.ID || err != nil {
			continue
		}
		switch {
		case a == b:
			return field("body.vtep_address", virtplane.Errorf(virtplane.ErrConflict, "vtep_address %v is node %s's", a, other.Name))
		case a.Is4() != b.Is4():
			return field("body.vtep_address", virtplane.Errorf(virtplane.ErrInvalidArgument, "vtep_address %v: not of the family of node %s's %v", a, other.Name, b))
		}
	}
	return nil
}

// submitFloodSync starts, in tx, the task that brings the flood lists of
// a vxlan cluster's VMs to its nodes as tx leaves them; other clusters
// have none (nil task).
func (s *Server) submitFloodSync(ctx context.Context, tx store.Tx, c model.Cluster) (*store.Task, error) {
	if c.NetworkMode != model.NetworkVXLAN {
		return nil, nil
	}
	t, _, err := s.cfg.Tasks.SubmitTx(ctx, tx, flow.FloodSyncSubmission(c.ID, principal(ctx).UserID))
	return &t, err
}

// floodSyncSubmitted wakes the engine for a task submitFloodSync stored,
// once its transaction committed.
func (s *Server) floodSyncSubmitted(t *store.Task) {
	if t == nil {
		return
	}
	s.cfg.Tasks.Wake()
	s.publish("task", "created", t.ID, t.Owner, string(t.State))
}

// networkChange checks a change of a cluster's network settings: the
// ports of existing VMs were made for the old ones, so mode and VNI change
// only while the cluster has no VM; a cluster turning vxlan needs a vtep
// address on every node.
func networkChange(ctx context.Context, tx store.Tx, old, c model.Cluster) error {
	mode := func(m string) string {
		if m == "" {
			return model.NetworkBridge
		}
		return m
	}
	if mode(old.NetworkMode) == mode(c.NetworkMode) && old.VNI == c.VNI && old.Bridge == c.Bridge {
		return nil
	}
	n, err := countVMs(ctx, tx, func(vm model.VM) bool { return vm.ClusterID == c.ID })
	if err != nil {
		return err
	}
	if n > 0 {
		return field("body.network_mode", virtplane.Errorf(virtplane.ErrConflict, "cluster %s has %d VMs: network mode, vni and bridge change only without VMs", c.ID, n))
	}
	if c.NetworkMode != model.NetworkVXLAN {
		return nil
	}
	objs, err := tx.ListObjects(ctx, store.KindNode, store.ListOptions{Parent: c.ID})
	if err != nil {
		return err
	}
	for _, o := range objs {
		nd, err := decode[model.Node](o)
		if err != nil {
			return err
		}
		if _, err := nd.VTEP(); err != nil {
			return field("body.network_mode", virtplane.Errorf(virtplane.ErrInvalidArgument, "vxlan mode needs a vtep address on every node: %v", err))
		}
	}
	return nil
}

func splitHostPort(a string) (string, string, error) {
	ap, err := netip.ParseAddrPort(a)
	if err == nil {
		return ap.Addr().String(), itoa(int(ap.Port())), nil
	}
	host, port, ok := strings.Cut(a, ":")
	if !ok || host == "" || port == "" {
		return "", "", virtplane.Errorf(virtplane.ErrInvalidArgument, "address %q: local, sim or host:port", a)
	}
	return host, port, nil
}

// countVMs counts the VMs that match; it scans, which is fine for the rare
// admin operations that use it.
func countVMs(ctx context.Context, r store.Reader, match func(model.VM) bool) (int, error) {
	n, after := 0, ""
	for {
		objs, err := r.ListObjects(ctx, store.KindVM, store.ListOptions{After: after, Limit: 1000})
		if err != nil {
			return 0, err
		}
		for _, o := range objs {
			vm, err := decode[model.VM](o)
			if err != nil {
				return 0, err
			}
			if match(vm) {
				n++
			}
		}
		if len(objs) < 1000 {
			return n, nil
		}
		after = objs[len(objs)-1].ID
	}
}

// PoolBody creates an IP pool.
type PoolBody struct {
	Name       string      `json:"name" minLength:"1" maxLength:"63"`
	ClusterIDs []string    `json:"cluster_ids" doc:"clusters whose VMs take addresses from the pool"`
	Blocks     []BlockBody `json:"blocks,omitempty"`
}

// BlockBody is a block of addresses.
type BlockBody struct {
	Range   string `json:"range" doc:"CIDR (192.0.2.0/24) or first-last range" minLength:"1"`
	Gateway string `json:"gateway,omitempty"`
}

func (b BlockBody) validate(loc string) error {
	if _, err := netip.ParsePrefix(b.Range); err != nil {
		first, last, ok := strings.Cut(b.Range, "-")
		_, e1 := netip.ParseAddr(strings.TrimSpace(first))
		_, e2 := netip.ParseAddr(strings.TrimSpace(last))
		if !ok || e1 != nil || e2 != nil {
			return field(loc+".range", virtplane.Errorf(virtplane.ErrInvalidArgument, "range %q: a CIDR or first-last", b.Range))
		}
	}
	if b.Gateway != "" {
		if _, err := netip.ParseAddr(b.Gateway); err != nil {
			return field(loc+".gateway", virtplane.Errorf(virtplane.ErrInvalidArgument, "gateway %q is not an address", b.Gateway))
		}
	}
	return nil
}

func (s *Server) registerPools() {
	tags := []string{"ip pools"}
	huma.Register(s.api, huma.Operation{
		OperationID: "listPools", Method: http.MethodGet, Path: "/v1/ippools", Tags: tags, Summary: "List IP pools (admin)",
	}, func(ctx context.Context, in *PageInput) (*struct{ Body Page[model.IPPool] }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		p, err := listObjects[model.IPPool](ctx, s.st, store.KindPool, store.ListOptions{After: in.After, Limit: in.Limit}, nil)
		return &struct{ Body Page[model.IPPool] }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getPool", Method: http.MethodGet, Path: "/v1/ippools/{id}", Tags: tags, Summary: "Get an IP pool (admin)",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body model.IPPool }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		p, _, err := getObject[model.IPPool](ctx, s.st, store.KindPool, in.ID, "path.id")
		return &struct{ Body model.IPPool }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createPool", Method: http.MethodPost, Path: "/v1/ippools", Tags: tags,
		Summary: "Create an IP pool (admin)", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct{ Body PoolBody }) (*struct{ Body model.IPPool }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if err := model.ValidName("name", in.Body.Name); err != nil {
			return nil, problem(field("body.name", err))
		}
		p := model.IPPool{ID: store.NewID(), Name: in.Body.Name, ClusterIDs: in.Body.ClusterIDs, Blocks: []model.IPBlock{}, Created: time.Now().UTC()}
		if p.ClusterIDs == nil {
			p.ClusterIDs = []string{}
		}
		for i, b := range in.Body.Blocks {
			if err := b.validate("body.blocks[" + itoa(i) + "]"); err != nil {
				return nil, problem(err)
			}
			p.Blocks = append(p.Blocks, model.IPBlock{ID: store.NewID(), Range: b.Range, Gateway: b.Gateway})
		}
		if s.cfg.IPAM != nil {
			ip := ipam.Pool{ID: p.ID, Clusters: p.ClusterIDs}
			for i, b := range p.Blocks {
				blk, err := ipam.ParseBlock(ipam.BlockSpec{ID: b.ID, Range: b.Range, Gateway: b.Gateway})
				if err != nil {
					return nil, problem(field("body.blocks["+itoa(i)+"]", err))
				}
				ip.Blocks = append(ip.Blocks, blk)
			}
			if _, err := s.cfg.IPAM.CreatePool(ctx, ip); err != nil {
				return nil, problem(field("body.blocks", err))
			}
		}
		err := s.st.Update(ctx, func(tx store.Tx) error {
			for i, c := range p.ClusterIDs {
				if _, err := tx.GetObject(ctx, store.KindCluster, c); err != nil {
					return field("body.cluster_ids["+itoa(i)+"]", err)
				}
			}
			data, err := encode(p)
			if err != nil {
				return err
			}
			return field("body.name", tx.CreateObject(ctx, &store.Object{Kind: store.KindPool, ID: p.ID, Name: p.Name, Data: data}))
		})
		if err != nil {
			if s.cfg.IPAM != nil {
				_ = s.cfg.IPAM.DeletePool(context.WithoutCancel(ctx), p.ID)
			}
			return nil, problem(err)
		}
		s.publish("pool", "created", p.ID, "", "")
		return &struct{ Body model.IPPool }{p}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "addPoolBlock", Method: http.MethodPost, Path: "/v1/ippools/{id}/blocks", Tags: tags,
		Summary: "Add a block of addresses to a pool (admin)", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct {
		IDInput
		Body BlockBody
	}) (*struct{ Body model.IPPool }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if err := in.Body.validate("body"); err != nil {
			return nil, problem(err)
		}
		// IPAM first, outside the store transaction: on SQLite both share
		// the one writer connection.
		b := model.IPBlock{ID: store.NewID(), Range: in.Body.Range, Gateway: in.Body.Gateway}
		if _, _, err := getObject[model.IPPool](ctx, s.st, store.KindPool, in.ID, "path.id"); err != nil {
			return nil, problem(err)
		}
		if s.cfg.IPAM != nil {
			blk, err := ipam.ParseBlock(ipam.BlockSpec{ID: b.ID, Range: b.Range, Gateway: b.Gateway})
			if err != nil {
				return nil, problem(field("body.range", err))
			}
			if _, err := s.cfg.IPAM.AddBlock(ctx, in.ID, blk); err != nil {
				return nil, problem(field("body.range", err))
			}
		}
		p, err := s.changePool(ctx, in.ID, func(p *model.IPPool) error {
			p.Blocks = append(p.Blocks, b)
			return nil
		})
		return &struct{ Body model.IPPool }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "removePoolBlock", Method: http.MethodDelete, Path: "/v1/ippools/{id}/blocks/{block}", Tags: tags,
		Summary: "Remove a block from a pool (admin); refused while addresses of it are in use", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct {
		IDInput
		Block string `path:"block"`
	}) (*struct{}, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		pool, _, err := getObject[model.IPPool](ctx, s.st, store.KindPool, in.ID, "path.id")
		if err != nil {
			return nil, problem(err)
		}
		if s.cfg.IPAM != nil && slices.ContainsFunc(pool.Blocks, func(b model.IPBlock) bool { return b.ID == in.Block }) {
			if err := s.cfg.IPAM.RemoveBlock(ctx, in.ID, in.Block); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
				return nil, problem(field("path.block", err))
			}
		}
		_, err = s.changePool(ctx, in.ID, func(p *model.IPPool) error {
			for i, b := range p.Blocks {
				if b.ID == in.Block {
					p.Blocks = append(p.Blocks[:i], p.Blocks[i+1:]...)
					return nil
				}
			}
			return field("path.block", virtplane.Errorf(virtplane.ErrNotFound, "block %q of pool %s", in.Block, in.ID))
		})
		return nil, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "deletePool", Method: http.MethodDelete, Path: "/v1/ippools/{id}", Tags: tags,
		Summary: "Delete a pool no VM uses (admin)", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if _, err := s.st.GetObject(ctx, store.KindPool, in.ID); err != nil {
			return nil, problem(field("path.id", err))
		}
		if n, err := countVMs(ctx, s.st, func(vm model.VM) bool { return vm.PoolID == in.ID }); err != nil || n > 0 {
			if err == nil {
				err = field("path.id", virtplane.Errorf(virtplane.ErrConflict, "pool %s is used by %d VMs", in.ID, n))
			}
			return nil, problem(err)
		}
		// IPAM refuses while the pool has allocations.
		if s.cfg.IPAM != nil {
			if err := s.cfg.IPAM.DeletePool(ctx, in.ID); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
				return nil, problem(field("path.id", err))
			}
		}
		err := s.st.Update(ctx, func(tx store.Tx) error { return tx.DeleteObject(ctx, store.KindPool, in.ID, 0) })
		return nil, problem(err)
	})
}

func (s *Server) changePool(ctx context.Context, id string, change func(*model.IPPool) error) (model.IPPool, error) {
	var p model.IPPool
	err := s.st.Update(ctx, func(tx store.Tx) error {
		var o store.Object
		var err error
		if p, o, err = getObject[model.IPPool](ctx, tx, store.KindPool, id, "path.id"); err != nil {
			return err
		}
		if err := change(&p); err != nil {
			return err
		}
		if o.Data, err = encode(p); err != nil {
			return err
		}
		return tx.UpdateObject(ctx, &o)
	})
	if err == nil {
		s.publish("pool", "changed", id, "", "")
	}
	return p, err
}

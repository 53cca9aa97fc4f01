package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/store"
)

// NodeBody adds a node.
type NodeBody struct {
	ClusterID string `json:"cluster_id" minLength:"1"`
	Name      string `json:"name" minLength:"1" maxLength:"63"`
	Address   string `json:"address" doc:"where the node is and what kind it is: local (this host), sim (a simulated node), qemu+unix:///system?socket=PATH[&migration_address=IP][&netns=NAME] (another libvirtd on this host), ssh://USER@HOST[:PORT][?socket=PATH][&agent=PATH][&netns=NAME] (a machine reached over SSH); the daemon's kinds are listed in errors"`
	Cores     int    `json:"cores,omitempty" minimum:"0" maximum:"4096" doc:"cores the node offers; default (0): what the node reports; at most that"`
	MemoryMiB int64  `json:"memory_mib,omitempty" minimum:"0" doc:"memory the node offers; default (0): what the node reports; at most that"`
	DiskGiB   int64  `json:"disk_gib,omitempty" minimum:"0" doc:"disk space the node offers; default (0): what the node reports; at most that"`
	// SSHPassword and SSHPrivateKey log in once to prepare the node.
	SSHPassword   string `json:"ssh_password,omitempty" doc:"the password to log in to an ssh:// node with, once, to install the daemon's key and the agent; never stored"`
	SSHPrivateKey string `json:"ssh_private_key,omitempty" doc:"a private key (PEM) to log in to an ssh:// node with, once, instead of a password; never stored"`
	// HostKeyFingerprint pins the node's host key.
	HostKeyFingerprint string `json:"host_key_fingerprint,omitempty" doc:"the SHA256 fingerprint the node's SSH host key must have (ssh-keygen -lf); empty pins the key seen first, and the answer shows it"`
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
		if s.cfg.Nodes == nil {
			return nil, problem(virtplane.Errorf(virtplane.ErrNotImplemented, "this daemon adds no nodes"))
		}
		addr, err := s.cfg.Nodes.ParseAddress("address", b.Address)
		if err != nil {
			return nil, problem(field("body.address", err))
		}
		n := model.Node{ID: store.NewID(), ClusterID: b.ClusterID, Name: b.Name, Address: addr.Raw, State: model.NodeActive,
			VTEPAddress: b.VTEPAddress, Created: time.Now().UTC()}
		// What can be checked without the node is checked before it is
		// touched: preparing installs things there.
		c, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, b.ClusterID, "body.cluster_id")
		if err != nil {
			return nil, problem(err)
		}
		if _, err := s.st.GetObjectByName(ctx, store.KindNode, n.ClusterID, n.Name); err == nil {
			return nil, problem(field("body.name", virtplane.Errorf(virtplane.ErrAlreadyExists, "node %q is in cluster %s already", n.Name, c.Name)))
		}
		facts, err := s.cfg.Nodes.Prepare(ctx, n.Name, addr, c.VirtType, node.Credentials{
			Password: b.SSHPassword, PrivateKey: b.SSHPrivateKey, HostKeyFingerprint: b.HostKeyFingerprint})
		if err != nil {
			return nil, problem(field("body.address", err))
		}
		n.HostKey, n.HostKeyFingerprint, n.AgentVersion, n.Warnings = facts.HostKey, facts.HostKeyFingerprint, facts.AgentVersion, facts.Warnings
		n.Addresses = facts.Addresses
		if n.Cores, err = capacity("body.cores", b.Cores, facts.Cores, facts.Nominal); err == nil {
			if n.MemoryMiB, err = capacity("body.memory_mib", b.MemoryMiB, facts.MemoryMiB, facts.Nominal); err == nil {
				n.DiskGiB, err = capacity("body.disk_gib", b.DiskGiB, facts.DiskGiB, facts.Nominal)
			}
		}
		if err == nil && s.cfg.Storages != nil {
			err = field("body.cluster_id", s.cfg.Storages.CheckNode(ctx, n, c))
		}
		if err != nil {
			s.cfg.Nodes.Forget(ctx, n)
			return nil, problem(err)
		}
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
			s.cfg.Nodes.Forget(ctx, n) // undo what preparing left on the node
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
		var removed model.Node
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
			removed, err = decode[model.Node](no)
			if err != nil {
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
			if s.cfg.Nodes != nil {
				s.cfg.Nodes.Forget(ctx, removed)
			}
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

// capacity is what a node offers of one resource: what the operator
// asked (at most what the node reports, unless that is only nominal), or
// what it reports.
func capacity[T int | int64](fieldName string, asked, reported T, nominal bool) (T, error) {
	switch {
	case asked < 0:
		return 0, field(fieldName, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %d: must not be negative", fieldName, asked))
	case asked == 0 && reported <= 0:
		return 0, field(fieldName, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: the node reports none; give it", fieldName))
	case asked == 0:
		return reported, nil
	case reported > 0 && asked > reported && !nominal:
		return 0, field(fieldName, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %d: the node has %d", fieldName, asked, reported))
	}
	return asked, nil
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

package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// ClusterBody creates a cluster: a field left out takes its default.
type ClusterBody struct {
	Name           string             `json:"name" minLength:"1" maxLength:"63"`
	VirtType       string             `json:"virt_type,omitempty" enum:"kvm,lxd" default:"kvm"`
	Strategy       string             `json:"strategy,omitempty" enum:"even,sequential" default:"even"`
	CPUOvercommit  float64            `json:"cpu_overcommit,omitempty" minimum:"1" maximum:"64" default:"1"`
	RAMOvercommit  float64            `json:"ram_overcommit,omitempty" minimum:"1" maximum:"8" default:"1"`
	DiskOvercommit float64            `json:"disk_overcommit,omitempty" minimum:"1" maximum:"16" default:"1"`
	MaxVMs         int                `json:"max_vms,omitempty" minimum:"0" default:"0" doc:"at most this many VMs in the cluster; 0: no limit"`
	MaxVMsPerNode  int                `json:"max_vms_per_node,omitempty" minimum:"0" default:"0" doc:"at most this many VMs on one node; 0: no limit"`
	NetworkMode    string             `json:"network_mode,omitempty" enum:"bridge,vxlan,routed" default:"bridge"`
	Bridge         string             `json:"bridge,omitempty" maxLength:"15"`
	VNI            int                `json:"vni,omitempty" minimum:"0" maximum:"16777215" doc:"VxLAN network identifier (vxlan mode: required, 1..16777215)"`
	Storages       []model.StorageRef `json:"storages,omitempty"`
}

func (b ClusterBody) apply(c *model.Cluster) error {
	if err := model.ValidName("name", b.Name); err != nil {
		return field("body.name", err)
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
	return modelField(c.ValidateStorages())
}

// ClusterPatch changes a cluster: only the fields sent change, the others
// keep their values (PUT and PATCH alike).
type ClusterPatch struct {
	Name           *string             `json:"name,omitempty" minLength:"1" maxLength:"63"`
	VirtType       *string             `json:"virt_type,omitempty" enum:"kvm,lxd" doc:"cannot change: accepted when it is the cluster's"`
	Strategy       *string             `json:"strategy,omitempty" enum:"even,sequential"`
	CPUOvercommit  *float64            `json:"cpu_overcommit,omitempty" minimum:"1" maximum:"64"`
	RAMOvercommit  *float64            `json:"ram_overcommit,omitempty" minimum:"1" maximum:"8"`
	DiskOvercommit *float64            `json:"disk_overcommit,omitempty" minimum:"1" maximum:"16"`
	MaxVMs         *int                `json:"max_vms,omitempty" minimum:"0" doc:"0: no limit"`
	MaxVMsPerNode  *int                `json:"max_vms_per_node,omitempty" minimum:"0" doc:"0: no limit"`
	NetworkMode    *string             `json:"network_mode,omitempty" enum:"bridge,vxlan,routed" doc:"changes only while the cluster has no VM"`
	Bridge         *string             `json:"bridge,omitempty" maxLength:"15"`
	VNI            *int                `json:"vni,omitempty" minimum:"0" maximum:"16777215" doc:"send 0 with a change away from vxlan"`
	Storages       *[]model.StorageRef `json:"storages,omitempty"`
}

// over returns the body of cluster c with the patch's fields set.
func (p ClusterPatch) over(c model.Cluster) ClusterBody {
	b := ClusterBody{Name: c.Name, VirtType: c.VirtType, Strategy: c.Strategy,
		CPUOvercommit: c.CPUOvercommit, RAMOvercommit: c.RAMOvercommit, DiskOvercommit: c.DiskOvercommit,
		MaxVMs: c.MaxVMs, MaxVMsPerNode: c.MaxVMsPerNode, NetworkMode: c.NetworkMode, Bridge: c.Bridge, VNI: c.VNI, Storages: c.Storages}
	set(&b.Name, p.Name)
	set(&b.VirtType, p.VirtType)
	set(&b.Strategy, p.Strategy)
	set(&b.CPUOvercommit, p.CPUOvercommit)
	set(&b.RAMOvercommit, p.RAMOvercommit)
	set(&b.DiskOvercommit, p.DiskOvercommit)
	set(&b.MaxVMs, p.MaxVMs)
	set(&b.MaxVMsPerNode, p.MaxVMsPerNode)
	set(&b.NetworkMode, p.NetworkMode)
	set(&b.Bridge, p.Bridge)
	set(&b.VNI, p.VNI)
	set(&b.Storages, p.Storages)
	return b
}

// set sets *dst to *v when the field was sent.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
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
		Description: "Every field but name is optional and takes the default the schema documents.",
	}, func(ctx context.Context, in *struct{ Body ClusterBody }) (*struct{ Body model.Cluster }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		c := model.Cluster{ID: store.NewID(), Created: time.Now().UTC()}
		if err := in.Body.apply(&c); err != nil {
			return nil, problem(err)
		}
		if err := s.validateStorages(c); err != nil {
			return nil, problem(err)
		}
		if err := s.checkStorages(ctx, model.Cluster{}, c); err != nil {
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
	update := func(ctx context.Context, in *struct {
		IDInput
		Body ClusterPatch
	}) (*struct{ Body model.Cluster }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		// The storages new or changed are reached before the write
		// transaction (they wait on backends); the transaction checks
		// again that the cluster still has what they were checked against.
		cur, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, in.ID, "path.id")
		if err != nil {
			return nil, problem(err)
		}
		checked := cur
		if err := in.Body.over(cur).apply(&checked); err != nil {
			return nil, problem(err)
		}
		if err := s.validateStorages(checked); err != nil {
			return nil, problem(err)
		}
		if err := s.checkStorages(ctx, cur, checked); err != nil {
			return nil, problem(err)
		}
		var c model.Cluster
		err = s.st.Update(ctx, func(tx store.Tx) error {
			var o store.Object
			var err error
			if c, o, err = getObject[model.Cluster](ctx, tx, store.KindCluster, in.ID, "path.id"); err != nil {
				return err
			}
			body := in.Body.over(c)
			if c.VirtType != body.VirtType {
				return field("body.virt_type", virtplane.Errorf(virtplane.ErrConflict, "virtualization type of a cluster cannot change"))
			}
			old := c
			if err := body.apply(&c); err != nil {
				return err
			}
			if err := networkChange(ctx, tx, old, c); err != nil {
				return err
			}
			if len(changedStorages(checked, c)) > 0 {
				return field("body.storages", virtplane.Errorf(virtplane.ErrConflict, "cluster %s changed meanwhile: send the change again", c.ID))
			}
			if err := storagesInUse(ctx, tx, old, c); err != nil {
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
	}
	const partial = "Only the fields sent change; the others keep their values. Placement rules apply to new VMs; network_mode, vni and bridge change only while the cluster has no VM."
	huma.Register(s.api, huma.Operation{
		OperationID: "updateCluster", Method: http.MethodPut, Path: "/v1/clusters/{id}", Tags: tags,
		Summary: "Change a cluster's settings (admin)", Description: partial,
	}, update)
	huma.Register(s.api, huma.Operation{
		OperationID: "patchCluster", Method: http.MethodPatch, Path: "/v1/clusters/{id}", Tags: tags,
		Summary: "Change some of a cluster's settings (admin)", Description: partial + " The same as PUT.",
	}, update)
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

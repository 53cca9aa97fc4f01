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

package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/vmm"
)

// RebalanceBody tunes a rebalance plan.
type RebalanceBody struct {
	Threshold float64 `json:"threshold,omitempty" minimum:"0" maximum:"1" doc:"the imbalance to get under (0.1: the most and least loaded nodes within 10 points); 0: as even as the moves allow"`
	MaxMoves  int     `json:"max_moves,omitempty" minimum:"0" maximum:"10000" doc:"at most this many migrations; 0: no bound"`
}

// MoveView is one migration of a rebalance plan.
type MoveView struct {
	VM   string `json:"vm_id"`
	From string `json:"from_node_id"`
	To   string `json:"to_node_id"`
}

// RebalancePlanView is the scheduler's plan for a cluster.
type RebalancePlanView struct {
	Before  float64    `json:"imbalance_before" doc:"the most loaded node's load fraction minus the least loaded one's, now"`
	After   float64    `json:"imbalance_after" doc:"the same once the moves are done"`
	Reached bool       `json:"reached" doc:"whether imbalance_after is within the threshold"`
	Moves   []MoveView `json:"moves"`
}

// ClusterTaskOutput answers a change of a cluster done by a task.
type ClusterTaskOutput struct {
	Body struct {
		Task TaskView `json:"task"`
	}
}

func (s *Server) registerPlacement() {
	tags := []string{"clusters"}
	huma.Register(s.api, huma.Operation{
		OperationID: "planRebalance", Method: http.MethodPost, Path: "/v1/clusters/{id}/rebalance-plan", Tags: tags,
		Summary:     "Plan live migrations that even out a cluster's load (admin); changes nothing",
		Description: "The scheduler's plan: each move keeps every placement rule (capacity, overcommit, anti-affinity, maintenance), with the imbalance before and after.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body *RebalanceBody
	}) (*struct{ Body RebalancePlanView }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if _, err := s.st.GetObject(ctx, store.KindCluster, in.ID); err != nil {
			return nil, problem(field("path.id", err))
		}
		if s.cfg.Backend == nil {
			return nil, problem(virtplane.Errorf(virtplane.ErrNotImplemented, "rebalance plans"))
		}
		b := RebalanceBody{}
		if in.Body != nil {
			b = *in.Body
		}
		plan, err := s.cfg.Backend.RebalancePlan(ctx, in.ID, b.Threshold, b.MaxMoves)
		if err != nil {
			return nil, problem(err)
		}
		out := RebalancePlanView{Before: plan.Before, After: plan.After, Reached: plan.Reached, Moves: []MoveView{}}
		for _, m := range plan.Moves {
			out.Moves = append(out.Moves, MoveView{VM: m.VM, From: m.From, To: m.To})
		}
		return &struct{ Body RebalancePlanView }{out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "rebalanceCluster", Method: http.MethodPost, Path: "/v1/clusters/{id}/rebalance", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Even out a cluster's load by live migration (admin)",
		Description: "Starts a cluster.rebalance task: it plans on the placement leader and runs each move as a vm.migrate task of its own, one after another; it stops at the first move that fails (which rolls back by itself), keeping the moves done.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body *RebalanceBody
	}) (*ClusterTaskOutput, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if _, err := s.st.GetObject(ctx, store.KindCluster, in.ID); err != nil {
			return nil, problem(field("path.id", err))
		}
		b := RebalanceBody{}
		if in.Body != nil {
			b = *in.Body
		}
		t, _, err := s.cfg.Tasks.Submit(ctx, tasks.Submission{Kind: flow.KindClusterRebalance, Owner: principal(ctx).UserID,
			Target: "cluster/" + in.ID, Resources: []string{"cluster/" + in.ID + "/rebalance"},
			Input: flow.RebalanceInput{ClusterID: in.ID, Threshold: b.Threshold, MaxMoves: b.MaxMoves}})
		if err != nil {
			return nil, problem(err)
		}
		s.cfg.Tasks.Wake()
		out := &ClusterTaskOutput{}
		out.Body.Task = viewTask(t)
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "setClusterRescue", Method: http.MethodPut, Path: "/v1/clusters/{id}/rescue", Tags: tags,
		Summary:     "Set the rescue image of a cluster's VMs (admin)",
		Description: "A kernel (with initrd and command line) at paths every node has, or an ISO image (format raw) imported like OS images; an empty body removes it.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body model.RescueImage
	}) (*struct{ Body model.Cluster }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		ri := in.Body
		var rescue *model.RescueImage
		if ri != (model.RescueImage{}) {
			if ri.ISOImageID != "" {
				if ri.Kernel != "" || ri.Initrd != "" || ri.Cmdline != "" {
					return nil, problem(field("body.iso_image_id", virtplane.Errorf(virtplane.ErrInvalidArgument, "an ISO image or a kernel, not both")))
				}
				img, _, err := getObject[model.Image](ctx, s.st, store.KindImage, ri.ISOImageID, "body.iso_image_id")
				if err != nil {
					return nil, problem(err)
				}
				if img.Format != "raw" {
					return nil, problem(field("body.iso_image_id", virtplane.Errorf(virtplane.ErrInvalidArgument, "image %s is %s: an ISO is imported as a raw image", img.ID, img.Format)))
				}
			} else if err := vmm.CheckRescue(vmm.RescueSpec{Kernel: ri.Kernel, Initrd: ri.Initrd, Cmdline: ri.Cmdline}); err != nil {
				return nil, problem(field("body.kernel", err))
			}
			rescue = &ri
		}
		return s.changeCluster(ctx, in.ID, func(c *model.Cluster) error { c.Rescue = rescue; return nil })
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "setClusterTemplate", Method: http.MethodPut, Path: "/v1/clusters/{id}/template", Tags: tags,
		Summary: "Set the domain template of a cluster's new VMs (admin); empty for the built-in one",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body struct {
			TemplateID string `json:"template_id"`
		}
	}) (*struct{ Body model.Cluster }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if id := in.Body.TemplateID; id != "" {
			if _, err := s.st.GetObject(ctx, store.KindTemplate, id); err != nil {
				return nil, problem(field("body.template_id", err))
			}
		}
		return s.changeCluster(ctx, in.ID, func(c *model.Cluster) error { c.TemplateID = in.Body.TemplateID; return nil })
	})
}

func (s *Server) changeCluster(ctx context.Context, id string, change func(*model.Cluster) error) (*struct{ Body model.Cluster }, error) {
	var c model.Cluster
	err := s.st.Update(ctx, func(tx store.Tx) error {
		var o store.Object
		var err error
		if c, o, err = getObject[model.Cluster](ctx, tx, store.KindCluster, id, "path.id"); err != nil {
			return err
		}
		if err := change(&c); err != nil {
			return err
		}
		if o.Data, err = encode(c); err != nil {
			return err
		}
		return tx.UpdateObject(ctx, &o)
	})
	if err != nil {
		return nil, problem(err)
	}
	s.cfg.Invalidate(c.ID)
	s.publish("cluster", "changed", c.ID, "", "")
	return &struct{ Body model.Cluster }{c}, nil
}

package flow

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/scheduler"
)

// RebalanceInput is the input of a cluster.rebalance task.
type RebalanceInput struct {
	ClusterID string  `json:"cluster_id"`
	Threshold float64 `json:"threshold"`
	MaxMoves  int     `json:"max_moves,omitempty"`
}

// RebalancePlan is the scheduler's plan to even out a cluster's load by
// live migrations, from a fresh view of the store (any daemon answers it;
// the task that applies it plans again on the placement leader).
func (f *Flow) RebalancePlan(ctx context.Context, clusterID string, threshold float64, maxMoves int) (scheduler.RebalancePlan, error) {
	s, err := f.buildScheduler(ctx, clusterID)
	if err != nil {
		return scheduler.RebalancePlan{}, err
	}
	return s.PlanRebalance(scheduler.RebalanceOptions{Threshold: threshold, MaxMoves: maxMoves})
}

// rebalance plans on the leader's own view (which knows the placements
// under way) and applies the plan one move at a time, each a vm.migrate
// task of its own that the rebalance waits for: a move carries its own
// undo, so a failed move rolls back by itself and the rebalance stops
// there, its completed moves kept (each leaves the cluster consistent).
// Only running VMs are in the plan's moves that are applied: a VM that
// stopped since is moved cold by its migrate task.
func (f *Flow) rebalance(ctx context.Context, r *tasks.Run) error {
	var in RebalanceInput
	if err := r.Input(&in); err != nil {
		return err
	}
	if f.engine == nil {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "rebalance: the flows are not registered with a task engine")
	}
	f.mu.Lock()
	s, err := f.schedulerFor(ctx, in.ClusterID)
	var plan scheduler.RebalancePlan
	if err == nil {
		plan, err = s.PlanRebalance(scheduler.RebalanceOptions{Threshold: in.Threshold, MaxMoves: in.MaxMoves})
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	_ = r.Log(ctx, fmt.Sprintf("plan: %d moves, imbalance %.3f → %.3f", len(plan.Moves), plan.Before, plan.After))
	for i, mv := range plan.Moves {
		var child store.Task
		if err := r.Step(ctx, fmt.Sprintf("move vm %s from node %s to node %s", mv.VM, mv.From, mv.To), tasks.NoUndo, func(ctx context.Context) error {
			var err error
			child, err = f.submitMigration(ctx, r.Task().Owner, mv)
			if err != nil {
				return err
			}
			_ = r.Log(ctx, "migration task "+child.ID)
			child, err = f.engine.Wait(ctx, child.ID)
			if err != nil {
				return err
			}
			if child.State != store.TaskSucceeded {
				return fmt.Errorf("migration task %s %s: %s", child.ID, child.State, child.Error)
			}
			return nil
		}); err != nil {
			return err
		}
		_ = r.Progress(ctx, 100*(i+1)/len(plan.Moves), fmt.Sprintf("%d of %d moves done", i+1, len(plan.Moves)))
	}
	return r.SetResult(plan)
}

// submitMigration starts the vm.migrate task of one move, recorded on the
// VM as its last task (as the API does).
func (f *Flow) submitMigration(ctx context.Context, owner string, mv scheduler.Move) (store.Task, error) {
	var t store.Task
	err := f.cfg.Store.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, store.KindVM, mv.VM)
		if err != nil {
			return err
		}
		var vm model.VM
		if err := json.Unmarshal(o.Data, &vm); err != nil {
			return err
		}
		if vm.NodeID != mv.From {
			return virtplane.Errorf(virtplane.ErrConflict, "vm %s moved to node %s since the plan", vm.ID, vm.NodeID)
		}
		t, _, err = f.engine.SubmitTx(ctx, tx, tasks.Submission{Kind: KindVMMigrate, Owner: owner, Target: "vm/" + vm.ID,
			Resources: []string{"vm/" + vm.ID}, Input: VMInput{VMID: vm.ID, NodeID: mv.To}})
		if err != nil {
			return err
		}
		vm.TaskID = t.ID
		if o.Data, err = json.Marshal(vm); err != nil {
			return err
		}
		return tx.UpdateObject(ctx, &o)
	})
	if err == nil {
		f.engine.Wake()
	}
	return t, err
}

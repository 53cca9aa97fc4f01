package ha

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/vmm"
)

// MoveResult is the outcome of one live migration.
type MoveResult struct {
	VM, From, To string
	Err          error
}

// DrainReport says what a Drain or Return did.
type DrainReport struct {
	Node     string
	Moves    []MoveResult
	Unplaced []scheduler.Unplaced
}

// Drain puts node in maintenance (it takes no new VMs) and live-migrates
// every VM the controller knows on it elsewhere, following the scheduler's
// evacuation plan, one at a time in plan order. VMs that fit nowhere or
// whose migration fails stay on the node and are in the report; the error
// is nil when the plan ran, whatever each move did.
func (c *Controller) Drain(ctx context.Context, node string) (DrainReport, error) {
	c.mu.Lock()
	n, ok := c.nodes[node]
	if !ok {
		c.mu.Unlock()
		return DrainReport{}, virtplane.Errorf(virtplane.ErrNotFound, "node %q", node)
	}
	mig, ok := vmm.As[vmm.Migrator](n.Driver)
	if !ok {
		c.mu.Unlock()
		return DrainReport{}, virtplane.Errorf(virtplane.ErrNotImplemented, "node %q: driver cannot live-migrate", node)
	}
	var list []scheduler.VM
	byID := map[string]*vmRecord{}
	for _, id := range slices.Sorted(maps.Keys(c.vms)) {
		if v := c.vms[id]; v.Node == node && v.phase == vmPlaced {
			list = append(list, v.schedVM())
			byID[id] = v
		}
	}
	if err := c.sched.SetNodeState(node, scheduler.NodeMaintenance); err != nil {
		c.mu.Unlock()
		return DrainReport{}, err
	}
	report := DrainReport{Node: node}
	if len(list) == 0 {
		c.mu.Unlock()
		return report, nil
	}
	plan, err := c.sched.PlanEvacuation(node, list)
	if err != nil {
		c.mu.Unlock()
		return DrainReport{}, err
	}
	report.Unplaced = plan.Unplaced
	c.log.Record(Event{Time: time.Now(), Kind: EventDrainStarted, Node: node,
		Reason: fmt.Sprintf("%d VMs to migrate, %d fit nowhere", len(plan.Moves), len(plan.Unplaced))})
	for _, m := range plan.Moves {
		byID[m.VM].phase = vmMoving
	}
	c.mu.Unlock()

	for _, m := range plan.Moves {
		v := byID[m.VM]
		res := c.migrate(ctx, mig, v, m.To, m.Pools)
		if res.Err == nil {
			c.mu.Lock()
			v.drainedFrom = node
			c.mu.Unlock()
		}
		report.Moves = append(report.Moves, res)
	}
	c.log.Record(Event{Time: time.Now(), Kind: EventDrainDone, Node: node, Reason: summarize(report)})
	return report, nil
}

// Return makes a drained node active again and migrates back the VMs that a
// Drain moved from it and that are still where the drain put them.
func (c *Controller) Return(ctx context.Context, node string) (DrainReport, error) {
	c.mu.Lock()
	if _, ok := c.nodes[node]; !ok {
		c.mu.Unlock()
		return DrainReport{}, virtplane.Errorf(virtplane.ErrNotFound, "node %q", node)
	}
	if err := c.sched.SetNodeState(node, scheduler.NodeActive); err != nil {
		c.mu.Unlock()
		return DrainReport{}, err
	}
	type back struct {
		v     *vmRecord
		mig   vmm.Migrator
		pools []string
	}
	var backs []back
	report := DrainReport{Node: node}
	for _, id := range slices.Sorted(maps.Keys(c.vms)) {
		v := c.vms[id]
		if v.drainedFrom != node || v.phase != vmPlaced {
			continue
		}
		mig, ok := vmm.As[vmm.Migrator](c.nodes[v.Node].Driver)
		if !ok {
			report.Moves = append(report.Moves, MoveResult{VM: v.ID, From: v.Node, To: node,
				Err: virtplane.Errorf(virtplane.ErrNotImplemented, "node %q: driver cannot live-migrate", v.Node)})
			continue
		}
		// Ask the scheduler whether the node still takes it (pinned to it).
		req := v.Request
		req.Node = node
		_ = c.sched.RemoveVM(v.ID)
		p, err := c.sched.Place(req)
		_ = c.sched.AddVM(v.schedVM())
		if err != nil {
			report.Unplaced = append(report.Unplaced, scheduler.Unplaced{VM: v.ID, Priority: v.Priority, Err: err})
			continue
		}
		v.phase = vmMoving
		backs = append(backs, back{v, mig, p.Pools})
	}
	c.mu.Unlock()
	for _, b := range backs {
		res := c.migrate(ctx, b.mig, b.v, node, b.pools)
		if res.Err == nil {
			c.mu.Lock()
			b.v.drainedFrom = ""
			c.mu.Unlock()
		}
		report.Moves = append(report.Moves, res)
	}
	c.log.Record(Event{Time: time.Now(), Kind: EventReturnDone, Node: node, Reason: summarize(report)})
	return report, nil
}

// migrate live-migrates v to node to, keeping the scheduler in step.
func (c *Controller) migrate(ctx context.Context, mig vmm.Migrator, v *vmRecord, to string, pools []string) MoveResult {
	c.mu.Lock()
	from := v.Node
	moved := v.VM
	moved.Node, moved.Pools = to, pools
	err := c.moveInScheduler(v.VM, moved)
	uri := c.nodes[to].MigrationURI
	c.mu.Unlock()
	if err == nil {
		err = mig.Migrate(ctx, v.name(), vmm.MigrationTarget{URI: uri}, nil)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v.phase = vmPlaced
	if err != nil {
		if !errors.Is(err, virtplane.ErrAlreadyExists) {
			_ = c.moveInScheduler(moved, v.VM)
		}
		c.log.Record(Event{Time: time.Now(), Kind: EventVMMigrateFail, Node: from, VM: v.ID, Target: to, Reason: err.Error()})
		return MoveResult{VM: v.ID, From: from, To: to, Err: err}
	}
	v.Node, v.Pools = to, pools
	c.log.Record(Event{Time: time.Now(), Kind: EventVMMigrated, Node: from, VM: v.ID, Target: to, Reason: "live migration"})
	return MoveResult{VM: v.ID, From: from, To: to}
}

func summarize(r DrainReport) string {
	ok, failed := 0, 0
	for _, m := range r.Moves {
		if m.Err == nil {
			ok++
		} else {
			failed++
		}
	}
	return fmt.Sprintf("%d migrated, %d failed, %d fit nowhere", ok, failed, len(r.Unplaced))
}

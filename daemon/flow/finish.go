package flow

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/virtplane/virtplane"

	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// vmPatch is what a task changed on its VM; finishVM applies it in the
// task's final transaction.
type vmPatch struct {
	State  string `json:"state,omitempty"`
	NodeID string `json:"node_id,omitempty"`
	Volume string `json:"volume,omitempty"`
	// Storage: the cluster storage the root disk is on now.
	Storage   string            `json:"storage,omitempty"`
	Addresses []string          `json:"addresses,omitempty"`
	CPUs      int               `json:"cpus,omitempty"`
	MemoryMiB int64             `json:"memory_mib,omitempty"`
	DiskGiB   int64             `json:"disk_gib,omitempty"`
	Limits    *model.Limits     `json:"limits,omitempty"`
	Snapshots *[]model.Snapshot `json:"snapshots,omitempty"`
	// Disks: the VM's data disks now (all of them).
	Disks *[]model.Disk `json:"disks,omitempty"`
	// LimitsApplied: how a limits change took effect (live, next_start).
	LimitsApplied string `json:"limits_applied,omitempty"`
	// ClusterID: a migration to another cluster.
	ClusterID string `json:"cluster_id,omitempty"`
}

// finishVM records a task's end on its VM in the task's final transaction.
// It runs once per task, at its final end: an attempt that a daemon stop
// interrupts is rolled back and queued again without it (tasks.Handler.Retry),
// so a create being retried stays "creating" and never shows failed between
// attempts.
func (f *Flow) finishVM(ctx context.Context, tx store.Tx, t *store.Task) error {
	var in VMInput
	if err := json.Unmarshal(t.Input, &in); err != nil || in.VMID == "" {
		return nil
	}
	o, err := tx.GetObject(ctx, store.KindVM, in.VMID)
	if err != nil {
		return nil // deleted meanwhile
	}
	var vm model.VM
	if err := json.Unmarshal(o.Data, &vm); err != nil {
		return err
	}
	switch {
	case t.Kind == KindVMDelete && t.State == store.TaskSucceeded:
		backups, err := tx.ListObjects(ctx, store.KindBackup, store.ListOptions{Parent: vm.ID})
		if err != nil {
			return err
		}
		for _, b := range backups {
			if err := tx.DeleteObject(ctx, store.KindBackup, b.ID, 0); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
				return err
			}
		}
		return tx.DeleteObject(ctx, store.KindVM, vm.ID, 0)
	case t.Kind == KindVMCreate && t.State != store.TaskSucceeded:
		vm.State, vm.Error = model.VMFailed, t.Error
	case t.State != store.TaskSucceeded:
		vm.Error = t.Error
	default:
		var p vmPatch
		if len(t.Result) > 0 {
			if err := json.Unmarshal(t.Result, &p); err != nil {
				return err
			}
		}
		vm.Error = ""
		if p.State != "" {
			vm.State = p.State
		}
		if p.NodeID != "" {
			vm.NodeID = p.NodeID
		}
		if p.Volume != "" {
			vm.Volume = p.Volume
		}
		if p.Storage != "" {
			vm.Storage = p.Storage
		}
		if p.Addresses != nil {
			vm.Addresses = p.Addresses
		}
		if p.CPUs != 0 {
			vm.CPUs = p.CPUs
		}
		if p.MemoryMiB != 0 {
			vm.MemoryMiB = p.MemoryMiB
		}
		if p.DiskGiB != 0 {
			vm.DiskGiB = p.DiskGiB
		}
		if p.Limits != nil {
			vm.Limits = *p.Limits
		}
		if p.Snapshots != nil {
			vm.Snapshots = *p.Snapshots
		}
		if p.Disks != nil {
			vm.Disks = *p.Disks
		}
		if p.LimitsApplied != "" {
			vm.LimitsApplied = p.LimitsApplied
		}
		if p.ClusterID != "" && p.ClusterID != vm.ClusterID {
			// Placement state of both clusters is rebuilt from the store,
			// which the task's end is about to change.
			defer f.Invalidate(vm.ClusterID)
			defer f.Invalidate(p.ClusterID)
			vm.ClusterID = p.ClusterID
		}
		if t.Kind == KindVMCreate || t.Kind == KindVMMigrate {
			f.commitReservation(vm)
		}
	}
	vm.TaskID = t.ID
	if o.Data, err = json.Marshal(vm); err != nil {
		return err
	}
	return tx.UpdateObject(ctx, &o)
}

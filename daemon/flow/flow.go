// Package flow holds the daemon's task handlers: what the tasks that change
// VMs do, step by step, over the SDK packages (scheduler, IPAM, storage,
// network, vmm). Each step records its undo before it acts (see package
// tasks), so a failure or a crash at any point leaves nothing behind.
//
// The create flow: reserve capacity with the scheduler → allocate addresses
// from the VM's IP pool → linked-clone the image into the VM's volume →
// prepare the network port → define and start the domain with cloud-init →
// commit the reservation and record the VM as running.
//
//	f := flow.New(flow.Config{Store: st})
//	f.Register(engine)
package flow

import (
	"context"
	"encoding/json"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
)

// The task kinds.
const (
	KindVMCreate         = "vm.create"
	KindVMDelete         = "vm.delete"
	KindVMStart          = "vm.start"
	KindVMStop           = "vm.stop"
	KindVMReboot         = "vm.reboot"
	KindVMResize         = "vm.resize"
	KindVMLimits         = "vm.limits"
	KindVMSnapshotCreate = "vm.snapshot.create"
	KindVMSnapshotDelete = "vm.snapshot.delete"
	KindVMRescue         = "vm.rescue"
	KindVMMigrate        = "vm.migrate"
)

// VMInput is the input of every VM task: the VM and what the task changes.
type VMInput struct {
	VMID      string        `json:"vm_id"`
	UserData  string        `json:"user_data,omitempty"`
	CPUs      int           `json:"cpus,omitempty"`
	MemoryMiB int64         `json:"memory_mib,omitempty"`
	DiskGiB   int64         `json:"disk_gib,omitempty"`
	Limits    *model.Limits `json:"limits,omitempty"`
	Snapshot  string        `json:"snapshot,omitempty"`
	Rescue    bool          `json:"rescue,omitempty"`
	NodeID    string        `json:"node_id,omitempty"`
	Force     bool          `json:"force,omitempty"`
}

// Config configures the flows.
type Config struct {
	Store  store.Store
	Events *events.Bus
}

// Flow runs the VM tasks.
type Flow struct {
	st  store.Store
	bus *events.Bus
}

// New returns the flows.
func New(cfg Config) (*Flow, error) {
	if cfg.Store == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "flow: Store is required")
	}
	if cfg.Events == nil {
		cfg.Events = events.NewBus()
	}
	return &Flow{st: cfg.Store, bus: cfg.Events}, nil
}

// Console tells how to reach a VM's console.
func (f *Flow) Console(ctx context.Context, vmID string) (model.ConsoleInfo, error) {
	return model.ConsoleInfo{}, virtplane.Errorf(virtplane.ErrNotImplemented, "console of vm %s: no hypervisor backend is wired yet", vmID)
}

// Kinds lists every task kind the flows handle.
func Kinds() []string {
	return []string{KindVMCreate, KindVMDelete, KindVMStart, KindVMStop, KindVMReboot, KindVMResize,
		KindVMLimits, KindVMSnapshotCreate, KindVMSnapshotDelete, KindVMRescue, KindVMMigrate}
}

// Register installs the handlers and undo actions on an engine.
func (f *Flow) Register(e *tasks.Engine) {
	for _, k := range Kinds() {
		e.Handle(k, tasks.Handler{Run: f.notLanded(k), Finish: f.finishVM})
	}
	e.Handle(KindVMDelete, tasks.Handler{Run: f.deleteVM, Finish: f.finishVM})
}

// deleteVM deletes a VM. A VM whose create failed holds nothing outside the
// store and goes at once; the rest needs the backends.
func (f *Flow) deleteVM(ctx context.Context, r *tasks.Run) error {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return err
	}
	o, err := f.st.GetObject(ctx, store.KindVM, in.VMID)
	if err != nil {
		return err
	}
	var vm model.VM
	if err := json.Unmarshal(o.Data, &vm); err != nil {
		return err
	}
	if vm.NodeID == "" && vm.Volume == "" && len(vm.Addresses) == 0 {
		return nil
	}
	return virtplane.Errorf(virtplane.ErrNotImplemented, "task %s: no hypervisor backend is wired into the daemon yet", KindVMDelete)
}

// notLanded is the handler of a kind whose backend packages have not been
// wired yet.
func (f *Flow) notLanded(kind string) func(context.Context, *tasks.Run) error {
	return func(ctx context.Context, r *tasks.Run) error {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "task %s: no hypervisor backend is wired into the daemon yet", kind)
	}
}

// finishVM records a task's end on its VM in the task's final transaction.
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
	case t.Kind == KindVMCreate && t.State != store.TaskSucceeded:
		vm.State, vm.Error = model.VMFailed, t.Error
	case t.Kind == KindVMDelete && t.State == store.TaskSucceeded:
		return tx.DeleteObject(ctx, store.KindVM, vm.ID, 0)
	case t.State != store.TaskSucceeded:
		vm.Error = t.Error
	}
	vm.TaskID = t.ID
	if o.Data, err = json.Marshal(vm); err != nil {
		return err
	}
	return tx.UpdateObject(ctx, &o)
}

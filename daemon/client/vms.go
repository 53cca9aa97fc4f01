package client

import (
	"context"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/scriptrun"
)

// VMTask is a VM and the task changing it.
type VMTask struct {
	VM   model.VM     `json:"vm"`
	Task api.TaskView `json:"task"`
	// ScriptRun is the run a create asked for (VMCreateBody.Script).
	ScriptRun *scriptrun.Run `json:"script_run,omitempty"`
}

// CreateVM asks for a VM; a non-empty idempotencyKey makes retries return
// the first request's VM and task (and lets the client retry the request
// itself when the daemon cannot be reached).
func (c *Client) CreateVM(ctx context.Context, b api.VMCreateBody, idempotencyKey string) (model.VM, api.TaskView, error) {
	var out VMTask
	var h []string
	if idempotencyKey != "" {
		h = []string{"Idempotency-Key", idempotencyKey}
	}
	err := c.call(ctx, "createVM", nil, nil, b, &out, h...)
	return out.VM, out.Task, err
}

// GetVM reads a VM.
func (c *Client) GetVM(ctx context.Context, id string) (model.VM, error) {
	var vm model.VM
	err := c.call(ctx, "getVM", []string{id}, nil, nil, &vm)
	return vm, err
}

// VMListOptions pages the VMs; Owner (admins) keeps one user's.
type VMListOptions struct {
	ListOptions
	Owner string
}

// ListVMs reads one page of the caller's VMs (admins: everyone's).
func (c *Client) ListVMs(ctx context.Context, o VMListOptions) (Page[model.VM], error) {
	var p Page[model.VM]
	q := pageQuery(o.ListOptions)
	if o.Owner != "" {
		q.Set("owner", o.Owner)
	}
	err := c.call(ctx, "listVMs", nil, q, nil, &p)
	return p, err
}

// DeleteVM starts the deletion of a VM.
func (c *Client) DeleteVM(ctx context.Context, id string) (api.TaskView, error) {
	return c.vmTask(ctx, "deleteVM", id, nil)
}

// StartVM starts a VM.
func (c *Client) StartVM(ctx context.Context, id string) (api.TaskView, error) {
	return c.vmTask(ctx, "startVM", id, nil)
}

// StopVM stops a VM.
func (c *Client) StopVM(ctx context.Context, id string) (api.TaskView, error) {
	return c.vmTask(ctx, "stopVM", id, nil)
}

// RebootVM reboots a VM.
func (c *Client) RebootVM(ctx context.Context, id string) (api.TaskView, error) {
	return c.vmTask(ctx, "rebootVM", id, nil)
}

// VMAction starts a task on a VM: "start", "stop", "reboot", "shutdown",
// "suspend", "resume" or "reset" (with the defaults of each).
func (c *Client) VMAction(ctx context.Context, id, action string) (api.TaskView, error) {
	switch action {
	case "start", "stop", "reboot", "shutdown", "suspend", "resume", "reset":
		return c.vmTask(ctx, action+"VM", id, nil)
	}
	return api.TaskView{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "vm action %q: start, stop, reboot, shutdown, suspend, resume or reset", action)
}

// ResizeVM changes a VM's CPUs, memory (a zero leaves it) and grows its
// disk to diskGiB (0 leaves it; disks only grow).
func (c *Client) ResizeVM(ctx context.Context, id string, cpus int, memoryMiB, diskGiB int64) (api.TaskView, error) {
	body := map[string]int64{}
	for k, v := range map[string]int64{"cpus": int64(cpus), "memory_mib": memoryMiB, "disk_gib": diskGiB} {
		if v != 0 {
			body[k] = v
		}
	}
	return c.vmTask(ctx, "resizeVM", id, body)
}

// SetVMLimits sets a VM's CPU, network and disk limits (zero: none).
func (c *Client) SetVMLimits(ctx context.Context, id string, l model.Limits) (api.TaskView, error) {
	return c.vmTask(ctx, "setVMLimits", id, l)
}

// Snapshot starts a snapshot of a VM of the default kind (CreateSnapshot).
func (c *Client) Snapshot(ctx context.Context, id, name string) (api.TaskView, error) {
	return c.CreateSnapshot(ctx, id, name, nil)
}

// ListSnapshots lists a VM's snapshots.
func (c *Client) ListSnapshots(ctx context.Context, id string) ([]model.Snapshot, error) {
	var p Page[model.Snapshot]
	err := c.call(ctx, "listSnapshots", []string{id}, nil, nil, &p)
	return p.Items, err
}

// RescueVM boots a VM into rescue mode (enabled) or back out of it.
func (c *Client) RescueVM(ctx context.Context, id string, enabled bool) (api.TaskView, error) {
	return c.vmTask(ctx, "rescueVM", id, map[string]bool{"enabled": enabled})
}

// MigrateVM starts the move of a VM to node nodeID, or to the node the
// scheduler picks when nodeID is empty (admin).
func (c *Client) MigrateVM(ctx context.Context, id, nodeID string) (api.TaskView, error) {
	return c.vmTask(ctx, "migrateVM", id, map[string]string{"node_id": nodeID})
}

// GetVMConsole tells how to reach a VM's console.
func (c *Client) GetVMConsole(ctx context.Context, id string) (model.ConsoleInfo, error) {
	var out model.ConsoleInfo
	err := c.call(ctx, "getVMConsole", []string{id}, nil, nil, &out)
	return out, err
}

// vmTask calls an operation on VM id that answers the VM and its task.
func (c *Client) vmTask(ctx context.Context, op, id string, body any) (api.TaskView, error) {
	var out VMTask
	err := c.call(ctx, op, []string{id}, nil, body, &out)
	return out.Task, err
}

// AttachVMDisk adds a data disk to a VM, stopped or running; the task
// makes the volume and plugs it in (the VM's disks list it once done).
func (c *Client) AttachVMDisk(ctx context.Context, vmID string, d api.DiskRequest) (api.TaskView, error) {
	return c.vmTask(ctx, "attachVMDisk", vmID, d)
}

// DetachVMDisk removes a VM's data disk at target (vdb, ...) and deletes
// its volume.
func (c *Client) DetachVMDisk(ctx context.Context, vmID, target string) (api.TaskView, error) {
	var out VMTask
	err := c.call(ctx, "detachVMDisk", []string{vmID, target}, nil, nil, &out)
	return out.Task, err
}

// ResizeVMDisk grows a VM's data disk at target to sizeGiB.
func (c *Client) ResizeVMDisk(ctx context.Context, vmID, target string, sizeGiB int64) (api.TaskView, error) {
	var out VMTask
	err := c.call(ctx, "resizeVMDisk", []string{vmID, target}, nil, map[string]int64{"size_gib": sizeGiB}, &out)
	return out.Task, err
}

package client

import (
	"context"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

// Shutdown starts a graceful shutdown ("shutdown") or reboot ("reboot")
// of a VM; b may be nil for the defaults (60 s, then forced).
func (c *Client) Shutdown(ctx context.Context, id, action string, b *api.ShutdownBody) (api.TaskView, error) {
	op, ok := map[string]string{"shutdown": "shutdownVM", "reboot": "rebootVM"}[action]
	if !ok {
		return api.TaskView{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "client: action %q: shutdown or reboot", action)
	}
	var body any
	if b != nil {
		body = b
	}
	return c.vmTask(ctx, op, id, body)
}

// ShutdownVM starts a graceful shutdown of a VM (Shutdown "shutdown").
func (c *Client) ShutdownVM(ctx context.Context, id string, b *api.ShutdownBody) (api.TaskView, error) {
	return c.Shutdown(ctx, id, "shutdown", b)
}

// SuspendVM pauses a running VM's CPUs.
func (c *Client) SuspendVM(ctx context.Context, id string) (api.TaskView, error) {
	return c.vmTask(ctx, "suspendVM", id, nil)
}

// ResumeVM continues a suspended VM.
func (c *Client) ResumeVM(ctx context.Context, id string) (api.TaskView, error) {
	return c.vmTask(ctx, "resumeVM", id, nil)
}

// ResetVM resets a running VM at once (the hard reboot).
func (c *Client) ResetVM(ctx context.Context, id string) (api.TaskView, error) {
	return c.vmTask(ctx, "resetVM", id, nil)
}

// SetLimits starts a change of a VM's limits (SetVMLimits); the VM's
// limits_applied says afterwards whether they took effect live.
func (c *Client) SetLimits(ctx context.Context, id string, l model.Limits) (api.TaskView, error) {
	return c.SetVMLimits(ctx, id, l)
}

// CreateSnapshot starts a snapshot of a VM; memory nil takes the default
// (memory of a running VM, disks of a stopped one).
func (c *Client) CreateSnapshot(ctx context.Context, id, name string, memory *bool) (api.TaskView, error) {
	return c.vmTask(ctx, "createSnapshot", id, api.SnapshotBody{Name: name, Memory: memory})
}

// RevertSnapshot starts the return of a VM to a snapshot.
func (c *Client) RevertSnapshot(ctx context.Context, id, name string) (api.TaskView, error) {
	var out VMTask
	err := c.call(ctx, "revertSnapshot", []string{id, name}, nil, nil, &out)
	return out.Task, err
}

// DeleteSnapshot starts the deletion of a snapshot.
func (c *Client) DeleteSnapshot(ctx context.Context, id, name string) (api.TaskView, error) {
	var out VMTask
	err := c.call(ctx, "deleteSnapshot", []string{id, name}, nil, nil, &out)
	return out.Task, err
}

// Rescue boots a VM into its cluster's rescue image (enabled) or back
// (RescueVM).
func (c *Client) Rescue(ctx context.Context, id string, enabled bool) (api.TaskView, error) {
	return c.RescueVM(ctx, id, enabled)
}

// MigrateVMToCluster starts the move of a VM to another cluster (to node
// nodeID there, or where the scheduler picks when it is empty) (admin).
func (c *Client) MigrateVMToCluster(ctx context.Context, id, clusterID, nodeID string) (api.TaskView, error) {
	return c.vmTask(ctx, "migrateVM", id, map[string]string{"node_id": nodeID, "cluster_id": clusterID})
}

// GuestInterfaces returns what the VM's guest agent reports.
func (c *Client) GuestInterfaces(ctx context.Context, id string) ([]api.GuestInterfaceView, error) {
	var out Page[api.GuestInterfaceView]
	err := c.call(ctx, "guestInterfaces", []string{id}, nil, nil, &out)
	return out.Items, err
}

// GuestExec runs a command in the VM through its guest agent.
func (c *Client) GuestExec(ctx context.Context, id string, b api.GuestExecBody) (api.GuestExecResult, error) {
	var out api.GuestExecResult
	err := c.call(ctx, "guestExec", []string{id}, nil, b, &out)
	return out, err
}

// SetGuestPassword sets a guest user's password through the guest agent.
func (c *Client) SetGuestPassword(ctx context.Context, id, user, password string) error {
	return c.call(ctx, "setGuestPassword", []string{id}, nil, api.GuestPasswordBody{User: user, Password: password}, nil)
}

// ConsoleTicket asks for a single-use ticket for a running VM's web console.
func (c *Client) ConsoleTicket(ctx context.Context, id string) (api.ConsoleTicketView, error) {
	var out api.ConsoleTicketView
	err := c.call(ctx, "createConsoleTicket", []string{id}, nil, nil, &out)
	return out, err
}

// Console says what console a VM has and whether it opens now
// (GetVMConsole).
func (c *Client) Console(ctx context.Context, id string) (model.ConsoleInfo, error) {
	return c.GetVMConsole(ctx, id)
}

// Base is the daemon's URL as the client was given it (BaseURL).
func (c *Client) Base() string { return c.BaseURL() }

// PlanRebalance asks the scheduler for a rebalance plan of a cluster (admin).
func (c *Client) PlanRebalance(ctx context.Context, clusterID string, b api.RebalanceBody) (api.RebalancePlanView, error) {
	var out api.RebalancePlanView
	err := c.call(ctx, "planRebalance", []string{clusterID}, nil, b, &out)
	return out, err
}

// Rebalance starts a task that applies a rebalance plan by live migration (admin).
func (c *Client) Rebalance(ctx context.Context, clusterID string, b api.RebalanceBody) (api.TaskView, error) {
	var out api.ClusterTaskOutput
	err := c.call(ctx, "rebalanceCluster", []string{clusterID}, nil, b, &out.Body)
	return out.Body.Task, err
}

// SetClusterRescue sets (or, with the zero value, removes) a cluster's rescue image (admin).
func (c *Client) SetClusterRescue(ctx context.Context, clusterID string, r model.RescueImage) (model.Cluster, error) {
	var out model.Cluster
	err := c.call(ctx, "setClusterRescue", []string{clusterID}, nil, r, &out)
	return out, err
}

// SetClusterTemplate sets the domain template of a cluster's new VMs (admin).
func (c *Client) SetClusterTemplate(ctx context.Context, clusterID, templateID string) (model.Cluster, error) {
	var out model.Cluster
	err := c.call(ctx, "setClusterTemplate", []string{clusterID}, nil, map[string]string{"template_id": templateID}, &out)
	return out, err
}

// ListTemplates lists the domain templates.
func (c *Client) ListTemplates(ctx context.Context, o ListOptions) (Page[model.DomainTemplate], error) {
	var p Page[model.DomainTemplate]
	err := c.call(ctx, "listTemplates", nil, pageQuery(o), nil, &p)
	return p, err
}

// GetTemplate reads a domain template.
func (c *Client) GetTemplate(ctx context.Context, id string) (model.DomainTemplate, error) {
	var out model.DomainTemplate
	err := c.call(ctx, "getTemplate", []string{id}, nil, nil, &out)
	return out, err
}

// CreateTemplate creates a domain template (admin).
func (c *Client) CreateTemplate(ctx context.Context, b api.TemplateBody) (model.DomainTemplate, error) {
	var out model.DomainTemplate
	err := c.call(ctx, "createTemplate", nil, nil, b, &out)
	return out, err
}

// UpdateTemplate changes a domain template, making a new version (admin).
func (c *Client) UpdateTemplate(ctx context.Context, id string, b api.TemplateBody) (model.DomainTemplate, error) {
	var out model.DomainTemplate
	err := c.call(ctx, "updateTemplate", []string{id}, nil, b, &out)
	return out, err
}

// DeleteTemplate deletes a domain template no cluster uses (admin).
func (c *Client) DeleteTemplate(ctx context.Context, id string) error {
	return c.call(ctx, "deleteTemplate", []string{id}, nil, nil, nil)
}

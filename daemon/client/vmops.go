package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

func vmPath(id string, rest ...string) string {
	p := "/v1/vms/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// Shutdown starts a graceful shutdown ("shutdown") or reboot ("reboot")
// of a VM; b may be nil for the defaults (60 s, then forced).
func (c *Client) Shutdown(ctx context.Context, id, action string, b *api.ShutdownBody) (api.TaskView, error) {
	var out VMTask
	var body any
	if b != nil {
		body = b
	}
	err := c.Do(ctx, http.MethodPost, vmPath(id, action), body, &out)
	return out.Task, err
}

// SetLimits starts a change of a VM's limits; the VM's limits_applied says
// afterwards whether they took effect live.
func (c *Client) SetLimits(ctx context.Context, id string, l model.Limits) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodPut, vmPath(id, "limits"), l, &out)
	return out.Task, err
}

// CreateSnapshot starts a snapshot of a VM; memory nil takes the default
// (memory of a running VM, disks of a stopped one).
func (c *Client) CreateSnapshot(ctx context.Context, id, name string, memory *bool) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodPost, vmPath(id, "snapshots"), api.SnapshotBody{Name: name, Memory: memory}, &out)
	return out.Task, err
}

// RevertSnapshot starts the return of a VM to a snapshot.
func (c *Client) RevertSnapshot(ctx context.Context, id, name string) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodPost, vmPath(id, "snapshots", url.PathEscape(name), "revert"), nil, &out)
	return out.Task, err
}

// DeleteSnapshot starts the deletion of a snapshot.
func (c *Client) DeleteSnapshot(ctx context.Context, id, name string) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodDelete, vmPath(id, "snapshots", url.PathEscape(name)), nil, &out)
	return out.Task, err
}

// Rescue boots a VM into its cluster's rescue image (enabled) or back.
func (c *Client) Rescue(ctx context.Context, id string, enabled bool) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodPost, vmPath(id, "rescue"), map[string]bool{"enabled": enabled}, &out)
	return out.Task, err
}

// MigrateVMToCluster starts the move of a VM to another cluster (to node
// nodeID there, or where the scheduler picks when it is empty) (admin).
func (c *Client) MigrateVMToCluster(ctx context.Context, id, clusterID, nodeID string) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodPost, vmPath(id, "migrate"), map[string]string{"node_id": nodeID, "cluster_id": clusterID}, &out)
	return out.Task, err
}

// GuestInterfaces returns what the VM's guest agent reports.
func (c *Client) GuestInterfaces(ctx context.Context, id string) ([]api.GuestInterfaceView, error) {
	var out Page[api.GuestInterfaceView]
	err := c.Do(ctx, http.MethodGet, vmPath(id, "guest", "interfaces"), nil, &out)
	return out.Items, err
}

// GuestExec runs a command in the VM through its guest agent.
func (c *Client) GuestExec(ctx context.Context, id string, b api.GuestExecBody) (api.GuestExecResult, error) {
	var out api.GuestExecResult
	err := c.Do(ctx, http.MethodPost, vmPath(id, "guest", "exec"), b, &out)
	return out, err
}

// SetGuestPassword sets a guest user's password through the guest agent.
func (c *Client) SetGuestPassword(ctx context.Context, id, user, password string) error {
	return c.Do(ctx, http.MethodPost, vmPath(id, "guest", "password"), api.GuestPasswordBody{User: user, Password: password}, nil)
}

// ConsoleTicket asks for a single-use ticket for a running VM's web console.
func (c *Client) ConsoleTicket(ctx context.Context, id string) (api.ConsoleTicketView, error) {
	var out api.ConsoleTicketView
	err := c.Do(ctx, http.MethodPost, vmPath(id, "console"), nil, &out)
	return out, err
}

// Console says what console a VM has and whether it opens now.
func (c *Client) Console(ctx context.Context, id string) (model.ConsoleInfo, error) {
	var out model.ConsoleInfo
	err := c.Do(ctx, http.MethodGet, vmPath(id, "console"), nil, &out)
	return out, err
}

// Base is the daemon's URL as the client was given it.
func (c *Client) Base() string { return c.base }

// PlanRebalance asks the scheduler for a rebalance plan of a cluster (admin).
func (c *Client) PlanRebalance(ctx context.Context, clusterID string, b api.RebalanceBody) (api.RebalancePlanView, error) {
	var out api.RebalancePlanView
	err := c.Do(ctx, http.MethodPost, "/v1/clusters/"+url.PathEscape(clusterID)+"/rebalance-plan", b, &out)
	return out, err
}

// Rebalance starts a task that applies a rebalance plan by live migration (admin).
func (c *Client) Rebalance(ctx context.Context, clusterID string, b api.RebalanceBody) (api.TaskView, error) {
	var out api.ClusterTaskOutput
	err := c.Do(ctx, http.MethodPost, "/v1/clusters/"+url.PathEscape(clusterID)+"/rebalance", b, &out.Body)
	return out.Body.Task, err
}

// SetClusterRescue sets (or, with the zero value, removes) a cluster's rescue image (admin).
func (c *Client) SetClusterRescue(ctx context.Context, clusterID string, r model.RescueImage) (model.Cluster, error) {
	var out model.Cluster
	err := c.Do(ctx, http.MethodPut, "/v1/clusters/"+url.PathEscape(clusterID)+"/rescue", r, &out)
	return out, err
}

// SetClusterTemplate sets the domain template of a cluster's new VMs (admin).
func (c *Client) SetClusterTemplate(ctx context.Context, clusterID, templateID string) (model.Cluster, error) {
	var out model.Cluster
	err := c.Do(ctx, http.MethodPut, "/v1/clusters/"+url.PathEscape(clusterID)+"/template", map[string]string{"template_id": templateID}, &out)
	return out, err
}

// CreateTemplate creates a domain template (admin).
func (c *Client) CreateTemplate(ctx context.Context, b api.TemplateBody) (model.DomainTemplate, error) {
	var out model.DomainTemplate
	err := c.Do(ctx, http.MethodPost, "/v1/templates", b, &out)
	return out, err
}

// UpdateTemplate changes a domain template, making a new version (admin).
func (c *Client) UpdateTemplate(ctx context.Context, id string, b api.TemplateBody) (model.DomainTemplate, error) {
	var out model.DomainTemplate
	err := c.Do(ctx, http.MethodPut, "/v1/templates/"+url.PathEscape(id), b, &out)
	return out, err
}

// DeleteTemplate deletes a domain template no cluster uses (admin).
func (c *Client) DeleteTemplate(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/templates/"+url.PathEscape(id), nil, nil)
}

package client

import (
	"context"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

// ListClusters reads one page of clusters.
func (c *Client) ListClusters(ctx context.Context, o ListOptions) (Page[model.Cluster], error) {
	var p Page[model.Cluster]
	err := c.call(ctx, "listClusters", nil, pageQuery(o), nil, &p)
	return p, err
}

// StorageDrivers lists the storage drivers a cluster storage may use,
// with their options (admin).
func (c *Client) StorageDrivers(ctx context.Context) ([]model.StorageDriver, error) {
	var out Page[model.StorageDriver]
	err := c.call(ctx, "listStorageDrivers", nil, nil, nil, &out)
	return out.Items, err
}

// StorageUsage reads the space of a cluster's storages (admin).
func (c *Client) StorageUsage(ctx context.Context, clusterID string) ([]model.StorageUsage, error) {
	var out Page[model.StorageUsage]
	err := c.call(ctx, "getClusterStorageUsage", []string{clusterID}, nil, nil, &out)
	return out.Items, err
}

// MoveVMDisk moves a VM's root disk to another storage of its cluster, live
// when the VM runs (admin); the task does it.
func (c *Client) MoveVMDisk(ctx context.Context, vmID, storage string) (api.TaskView, error) {
	return c.vmTask(ctx, "moveVMDisk", vmID, map[string]string{"storage": storage})
}

// MoveVMDataDisk moves a VM's disk at target (vdb, ...; vda: the root
// disk) to another storage of its cluster, live when the VM runs (admin).
func (c *Client) MoveVMDataDisk(ctx context.Context, vmID, target, storage string) (api.TaskView, error) {
	return c.vmTask(ctx, "moveVMDisk", vmID, map[string]string{"storage": storage, "disk": target})
}

// BackupVM backs a stopped VM's disk up into a storage of its cluster; the
// backup is listed once the task succeeded (its ID is the task's).
func (c *Client) BackupVM(ctx context.Context, vmID, storage string) (api.TaskView, error) {
	return c.vmTask(ctx, "backupVM", vmID, map[string]string{"storage": storage})
}

// ImageFromVM makes an image of a stopped VM's disk (admin); the task
// copies it.
func (c *Client) ImageFromVM(ctx context.Context, vmID, name string) (model.Image, api.TaskView, error) {
	var out struct {
		Image model.Image  `json:"image"`
		Task  api.TaskView `json:"task"`
	}
	err := c.call(ctx, "imageFromVM", []string{vmID}, nil, map[string]string{"name": name}, &out)
	return out.Image, out.Task, err
}

// CloneVM makes a new VM named name with a full copy of the stopped VM
// vmID's disk; key, when set, is the create's idempotency key.
func (c *Client) CloneVM(ctx context.Context, vmID, name, key string) (model.VM, api.TaskView, error) {
	var out VMTask
	var headers []string
	if key != "" {
		headers = []string{"Idempotency-Key", key}
	}
	err := c.call(ctx, "cloneVM", []string{vmID}, nil, map[string]string{"name": name}, &out, headers...)
	return out.VM, out.Task, err
}

// ListBackups lists a VM's backups.
func (c *Client) ListBackups(ctx context.Context, vmID string) ([]model.Backup, error) {
	var out Page[model.Backup]
	err := c.call(ctx, "listBackups", []string{vmID}, nil, nil, &out)
	return out.Items, err
}

// RestoreBackup puts a backup back as its stopped VM's disk.
func (c *Client) RestoreBackup(ctx context.Context, vmID, backupID string) (api.TaskView, error) {
	var out VMTask
	err := c.call(ctx, "restoreBackup", []string{vmID, backupID}, nil, nil, &out)
	return out.Task, err
}

// DeleteBackup deletes a backup.
func (c *Client) DeleteBackup(ctx context.Context, vmID, backupID string) (api.TaskView, error) {
	var out VMTask
	err := c.call(ctx, "deleteBackup", []string{vmID, backupID}, nil, nil, &out)
	return out.Task, err
}

// GetCluster reads a cluster.
func (c *Client) GetCluster(ctx context.Context, id string) (model.Cluster, error) {
	var out model.Cluster
	err := c.call(ctx, "getCluster", []string{id}, nil, nil, &out)
	return out, err
}

// CreateCluster creates a cluster (admin).
func (c *Client) CreateCluster(ctx context.Context, b api.ClusterBody) (model.Cluster, error) {
	var out model.Cluster
	err := c.call(ctx, "createCluster", nil, nil, b, &out)
	return out, err
}

// UpdateCluster replaces a cluster's settings (admin).
func (c *Client) UpdateCluster(ctx context.Context, id string, b api.ClusterBody) (model.Cluster, error) {
	var out model.Cluster
	err := c.call(ctx, "updateCluster", []string{id}, nil, b, &out)
	return out, err
}

// DeleteCluster deletes a cluster without nodes (admin).
func (c *Client) DeleteCluster(ctx context.Context, id string) error {
	return c.call(ctx, "deleteCluster", []string{id}, nil, nil, nil)
}

// SyncClusterFlood starts the task that brings the flood lists of a vxlan
// cluster's VMs to its nodes (admin).
func (c *Client) SyncClusterFlood(ctx context.Context, id string) (api.TaskView, error) {
	var out api.TaskView
	err := c.call(ctx, "syncClusterFlood", []string{id}, nil, nil, &out)
	return out, err
}

// NodeListOptions pages the nodes, of one cluster when ClusterID is set.
type NodeListOptions struct {
	ListOptions
	ClusterID string
}

// ListNodes reads one page of nodes (admin).
func (c *Client) ListNodes(ctx context.Context, o NodeListOptions) (Page[model.Node], error) {
	var p Page[model.Node]
	q := pageQuery(o.ListOptions)
	if o.ClusterID != "" {
		q.Set("cluster_id", o.ClusterID)
	}
	err := c.call(ctx, "listNodes", nil, q, nil, &p)
	return p, err
}

// GetNode reads a node (admin).
func (c *Client) GetNode(ctx context.Context, id string) (model.Node, error) {
	var out model.Node
	err := c.call(ctx, "getNode", []string{id}, nil, nil, &out)
	return out, err
}

// AddNode adds a node (admin).
func (c *Client) AddNode(ctx context.Context, b api.NodeBody) (model.Node, error) {
	var out model.Node
	err := c.call(ctx, "addNode", nil, nil, b, &out)
	return out, err
}

// SetNodeMaintenance puts a node into maintenance (no new VMs) or takes
// it out (admin).
func (c *Client) SetNodeMaintenance(ctx context.Context, id string, enabled bool) (model.Node, error) {
	var out model.Node
	err := c.call(ctx, "setNodeMaintenance", []string{id}, nil, map[string]bool{"enabled": enabled}, &out)
	return out, err
}

// RemoveNode removes a node that hosts no VM (admin).
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	return c.call(ctx, "removeNode", []string{id}, nil, nil, nil)
}

// SetNodeVTEP changes a node's VxLAN underlay address (admin).
func (c *Client) SetNodeVTEP(ctx context.Context, id, vtep string) (model.Node, error) {
	var out model.Node
	err := c.call(ctx, "setNodeVTEP", []string{id}, nil, map[string]string{"vtep_address": vtep}, &out)
	return out, err
}

// ListPools reads one page of IP pools (admin).
func (c *Client) ListPools(ctx context.Context, o ListOptions) (Page[model.IPPool], error) {
	var p Page[model.IPPool]
	err := c.call(ctx, "listPools", nil, pageQuery(o), nil, &p)
	return p, err
}

// GetPool reads an IP pool (admin).
func (c *Client) GetPool(ctx context.Context, id string) (model.IPPool, error) {
	var out model.IPPool
	err := c.call(ctx, "getPool", []string{id}, nil, nil, &out)
	return out, err
}

// CreatePool creates an IP pool (admin).
func (c *Client) CreatePool(ctx context.Context, b api.PoolBody) (model.IPPool, error) {
	var out model.IPPool
	err := c.call(ctx, "createPool", nil, nil, b, &out)
	return out, err
}

// AddPoolBlock adds a block of addresses to a pool (admin).
func (c *Client) AddPoolBlock(ctx context.Context, id string, b api.BlockBody) (model.IPPool, error) {
	var out model.IPPool
	err := c.call(ctx, "addPoolBlock", []string{id}, nil, b, &out)
	return out, err
}

// RemovePoolBlock removes a block no address of which is in use (admin).
func (c *Client) RemovePoolBlock(ctx context.Context, id, blockID string) error {
	return c.call(ctx, "removePoolBlock", []string{id, blockID}, nil, nil, nil)
}

// CheckPoolDNSBL checks the addresses VMs hold in a pool, and those b
// names, against the daemon's DNS blocklists; with b.ExcludeListed the
// listed ones no VM holds are excluded from their blocks (admin).
func (c *Client) CheckPoolDNSBL(ctx context.Context, id string, b api.DNSBLCheckBody) (api.DNSBLReport, error) {
	var out api.DNSBLReport
	err := c.call(ctx, "checkPoolDNSBL", []string{id}, nil, b, &out)
	return out, err
}

// DeletePool deletes a pool no VM uses (admin).
func (c *Client) DeletePool(ctx context.Context, id string) error {
	return c.call(ctx, "deletePool", []string{id}, nil, nil, nil)
}

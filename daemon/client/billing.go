package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

// PatchCluster changes the fields of a cluster that p sets (admin);
// UpdateCluster sends them all.
func (c *Client) PatchCluster(ctx context.Context, id string, p api.ClusterPatch) (model.Cluster, error) {
	var out model.Cluster
	err := c.call(ctx, "patchCluster", []string{id}, nil, p, &out)
	return out, err
}

// Quota returns a user's quota and what their VMs use of it (admin or self).
func (c *Client) Quota(ctx context.Context, userID string) (model.Quota, error) {
	var out model.Quota
	err := c.call(ctx, "getQuota", []string{userID}, nil, nil, &out)
	return out, err
}

// SetQuota changes the limits of a user's quota that p sets; -1 removes a
// limit (admin).
func (c *Client) SetQuota(ctx context.Context, userID string, p api.QuotaPatch) (model.Quota, error) {
	var out model.Quota
	err := c.call(ctx, "patchQuota", []string{userID}, nil, p, &out)
	return out, err
}

// PutQuota sets a user's quota (PUT; the same partial change as SetQuota)
// (admin).
func (c *Client) PutQuota(ctx context.Context, userID string, p api.QuotaPatch) (model.Quota, error) {
	var out model.Quota
	err := c.call(ctx, "setQuota", []string{userID}, nil, p, &out)
	return out, err
}

// AuditLog returns a page of the audit log, oldest first (admin): every
// mutating call, of actor and on target when they are set.
func (c *Client) AuditLog(ctx context.Context, actor, target, after string, limit int) (Page[api.AuditEntry], error) {
	q := url.Values{}
	for k, v := range map[string]string{"actor": actor, "target": target, "after": after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out Page[api.AuditEntry]
	err := c.call(ctx, "listAudit", nil, q, nil, &out)
	return out, err
}

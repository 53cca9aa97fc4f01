package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

// UpdateCluster changes the fields of a cluster that p sets (admin).
func (c *Client) UpdateCluster(ctx context.Context, id string, p api.ClusterPatch) (model.Cluster, error) {
	var out model.Cluster
	err := c.Do(ctx, http.MethodPatch, "/v1/clusters/"+url.PathEscape(id), p, &out)
	return out, err
}

// Quota returns a user's quota and what their VMs use of it (admin or self).
func (c *Client) Quota(ctx context.Context, userID string) (model.Quota, error) {
	var out model.Quota
	err := c.Do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(userID)+"/quota", nil, &out)
	return out, err
}

// SetQuota changes the limits of a user's quota that p sets; -1 removes a
// limit (admin).
func (c *Client) SetQuota(ctx context.Context, userID string, p api.QuotaPatch) (model.Quota, error) {
	var out model.Quota
	err := c.Do(ctx, http.MethodPatch, "/v1/users/"+url.PathEscape(userID)+"/quota", p, &out)
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
	err := c.Do(ctx, http.MethodGet, "/v1/audit?"+q.Encode(), nil, &out)
	return out, err
}

package daemon_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
)

// TestCreateDefaultsAndPartialUpdates: a field with a documented default
// may be left out of a create; PUT and PATCH of a cluster change only the
// fields sent; the OpenAPI document says both.
func TestCreateDefaultsAndPartialUpdates(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()

	var c model.Cluster
	require.NoError(t, e.admin.Do(ctx, "POST", "/v1/clusters", map[string]any{"name": "bare"}, &c))
	assert.Equal(t, "kvm", c.VirtType)
	assert.Equal(t, "even", c.Strategy)
	assert.Equal(t, 1.0, c.CPUOvercommit)
	assert.Equal(t, 1.0, c.RAMOvercommit)
	assert.Equal(t, 1.0, c.DiskOvercommit)
	assert.Zero(t, c.MaxVMs)
	assert.Zero(t, c.MaxVMsPerNode)
	assert.Equal(t, model.NetworkBridge, c.NetworkMode)

	// Only what is sent changes, through PUT and PATCH alike.
	var got model.Cluster
	require.NoError(t, e.admin.Do(ctx, "PATCH", "/v1/clusters/"+c.ID, map[string]any{"cpu_overcommit": 4, "max_vms": 10}, &got))
	assert.Equal(t, 4.0, got.CPUOvercommit)
	assert.Equal(t, 10, got.MaxVMs)
	assert.Equal(t, "bare", got.Name)
	assert.Equal(t, "even", got.Strategy)
	require.NoError(t, e.admin.Do(ctx, "PUT", "/v1/clusters/"+c.ID, map[string]any{"strategy": "sequential"}, &got))
	assert.Equal(t, "sequential", got.Strategy)
	assert.Equal(t, 4.0, got.CPUOvercommit, "kept")
	assert.Equal(t, 10, got.MaxVMs, "kept")
	require.NoError(t, e.admin.Do(ctx, "PATCH", "/v1/clusters/"+c.ID, map[string]any{"max_vms": 0}, &got))
	assert.Zero(t, got.MaxVMs, "a zero sent is a change")
	require.NoError(t, e.admin.Do(ctx, "GET", "/v1/clusters/"+c.ID, nil, &got))
	assert.Equal(t, "sequential", got.Strategy)
	assert.Equal(t, 4.0, got.CPUOvercommit)

	// Bad input in a partial update still names its field.
	for _, tc := range []struct {
		body   map[string]any
		status int
		field  string
	}{
		{map[string]any{"cpu_overcommit": 0.5}, 422, "body.cpu_overcommit"},
		{map[string]any{"virt_type": "lxd"}, 409, "body.virt_type"},
		{map[string]any{"name": "Bad_Name"}, 422, "body.name"},
		{map[string]any{"network_mode": "vxlan"}, 422, "body.vni"},
		{map[string]any{"unknown": 1}, 422, "body.unknown"},
	} {
		err := e.admin.Do(ctx, "PATCH", "/v1/clusters/"+c.ID, tc.body, nil)
		wantProblem(t, err, tc.status, tc.field)
	}
	// A VM in the cluster of newEnv keeps its mode; renaming is fine.
	err := e.admin.Do(ctx, "PATCH", "/v1/clusters/"+e.cluster.ID, map[string]any{"network_mode": "routed"}, nil)
	wantProblem(t, err, 409, "body.network_mode")
	require.NoError(t, e.admin.Do(ctx, "PATCH", "/v1/clusters/"+e.cluster.ID, map[string]any{"name": "fra2"}, &got))
	assert.Equal(t, model.NetworkBridge, got.NetworkMode)

	var img model.Image
	require.NoError(t, e.admin.Do(ctx, "POST", "/v1/images", map[string]any{"name": "plain", "source": "/var/lib/images/plain.qcow2"}, &img))
	assert.Equal(t, "linux", img.OSType)
	assert.Equal(t, "qcow2", img.Format)
	var u model.User
	require.NoError(t, e.admin.Do(ctx, "POST", "/v1/users", map[string]any{"name": "carol", "password": "carol-password"}, &u))
	assert.Equal(t, model.RoleUser, u.Role)

	// The document: create requires only the name; PUT and PATCH say they
	// are partial and require nothing.
	resp, err := http.Get(e.url + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc struct {
		Paths      map[string]map[string]struct{ Description string } `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Required []string `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	assert.Equal(t, []string{"name"}, doc.Components.Schemas["ClusterBody"].Required)
	assert.Empty(t, doc.Components.Schemas["ClusterPatch"].Required)
	assert.Equal(t, []string{"name"}, doc.Components.Schemas["ImageBody"].Required, "source or lxd_alias, checked by the handler")
	for _, m := range []string{"put", "patch"} {
		assert.Contains(t, doc.Paths["/v1/clusters/{id}"][m].Description, "Only the fields sent change", m)
	}
}

// wantProblem checks that err is the API's problem of status at field.
func wantProblem(t *testing.T, err error, status int, field string) {
	t.Helper()
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	assert.Equal(t, status, p.Status, p.Error())
	assert.Equal(t, field, p.Field(), p.Error())
}

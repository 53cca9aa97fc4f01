package daemon_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
)

// TestEveryMutatingOperationIsAudited makes every call of the RBAC cases
// (one or more per operation of the OpenAPI document), then reads the
// audit log as the admin: every POST, PUT, PATCH and DELETE operation of
// the document has an entry naming the caller, the status and the target,
// secrets left out; reads have none; users may not read it.
func TestEveryMutatingOperationIsAudited(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	for _, c := range append(e.rbacCases(), e.scriptRBACCases(t)...) {
		_ = e.bob.Do(ctx, c.method, c.path, c.body, nil)
	}
	var all []api.AuditEntry
	after := ""
	for {
		page, err := e.admin.AuditLog(ctx, "", "", after, 1000)
		require.NoError(t, err)
		all = append(all, page.Items...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	byOp := map[string][]api.AuditEntry{}
	for _, en := range all {
		byOp[en.Operation] = append(byOp[en.Operation], en)
		assert.NotEqual(t, http.MethodGet, en.Method, "a read is not audited: %+v", en)
		assert.NotContains(t, string(en.Body), "-password\"", "a password in the audit log: %s", en.Body)
	}
	mutating := 0
	for path, item := range e.srv.API.OpenAPI().Paths {
		for method, op := range map[string]*huma.Operation{"POST": item.Post, "PUT": item.Put, "PATCH": item.Patch, "DELETE": item.Delete} {
			if op == nil {
				continue
			}
			mutating++
			entries := byOp[op.OperationID]
			if !assert.NotEmpty(t, entries, "%s %s (%s) wrote no audit entry", method, path, op.OperationID) {
				continue
			}
			for _, en := range entries {
				assert.Equal(t, method, en.Method)
				assert.NotZero(t, en.Status)
				assert.False(t, en.At.IsZero())
			}
		}
	}
	assert.Greater(t, mutating, 20)

	// Who, what and how it ended.
	var created []api.AuditEntry
	for _, en := range byOp["createVM"] {
		if en.ActorID == e.aliceID {
			created = append(created, en)
		}
	}
	require.Len(t, created, 1, "alice's create in newEnv")
	assert.Equal(t, "alice", created[0].Actor)
	assert.Equal(t, http.StatusAccepted, created[0].Status)
	var body map[string]any
	require.NoError(t, json.Unmarshal(created[0].Body, &body))
	assert.Equal(t, "web", body["name"])
	for _, en := range byOp["deleteVM"] {
		if en.ActorID == e.bobID {
			assert.Equal(t, e.aliceVM.ID, en.Target)
			assert.Contains(t, []int{403, 404}, en.Status, "bob's refused delete is recorded as refused")
		}
	}
	for _, op := range []string{"createUser", "login"} {
		for _, en := range byOp[op] {
			require.NoError(t, json.Unmarshal(en.Body, &body))
			assert.Equal(t, "(redacted)", body["password"], op)
		}
	}

	// Filters: by caller, by object.
	bobs, err := e.admin.AuditLog(ctx, e.bobID, "", "", 1000)
	require.NoError(t, err)
	require.NotEmpty(t, bobs.Items)
	for _, en := range bobs.Items {
		assert.Equal(t, e.bobID, en.ActorID)
	}
	_, err = e.admin.PatchCluster(ctx, e.cluster.ID, api.ClusterPatch{Strategy: ptr("sequential")})
	require.NoError(t, err)
	onCluster, err := e.admin.AuditLog(ctx, "", e.cluster.ID, "", 1000)
	require.NoError(t, err)
	require.NotEmpty(t, onCluster.Items)
	last := onCluster.Items[len(onCluster.Items)-1]
	assert.Equal(t, "patchCluster", last.Operation)
	assert.Equal(t, http.StatusOK, last.Status)
	assert.JSONEq(t, `{"strategy":"sequential"}`, string(last.Body))

	_, err = e.alice.AuditLog(ctx, "", "", "", 0)
	wantProblem(t, err, 403, "")
}

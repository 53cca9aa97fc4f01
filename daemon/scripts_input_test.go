package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/scriptrun"
)

func TestScriptRequestsOverOneMiBAreRefused(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	big := strings.Repeat("echo x\n", (1<<20)/7+1) // just over 1 MiB of body
	for _, path := range []string{"/v1/scripts", "/v1/script-variables", "/v1/notifications/subscriptions"} {
		body, _ := json.Marshal(map[string]any{"name": "big", "kind": "shell", "body": big, "value": big, "events": []string{"task.failed"}, "channel": "webhook", "webhook_url": "http://127.0.0.1:9/" + big})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+adminToken(t, e))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, path)
	}
	// Under the request limit, the body's own limit (256 KiB) names the field.
	_, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "big", Kind: "shell", Body: strings.Repeat("echo x\n", (300<<10)/7)})
	p := problemOf(t, err)
	assert.Equal(t, http.StatusUnprocessableEntity, p.Status)
	assert.Equal(t, "body.body", p.Field())
	page, err := e.alice.ListScripts(ctx, "", 100)
	require.NoError(t, err)
	for _, s := range page.Items {
		assert.NotEqual(t, "big", s.Name, "nothing of a refused request is stored")
	}
}

// adminToken digs the admin's token out of its client (the tests keep one).
func adminToken(t *testing.T, e *env) string {
	tok, err := client.New(e.url, "").Login(t.Context(), "admin", "admin-password")
	require.NoError(t, err)
	return tok
}

func TestScriptBadInputNamesTheField(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	f := e.setupScripts(t)
	cases := []struct {
		name   string
		call   func() error
		status int
		field  string
		says   string
	}{
		{"reserved parameter", func() error {
			_, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "x", Kind: "shell", Body: "true\n", Params: []scriptrun.Param{{Name: "LD_PRELOAD", Type: "string"}}})
			return err
		}, 422, "body.params[0]", "reserved"},
		{"bad pattern", func() error {
			_, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "x", Kind: "shell", Body: "true\n", Params: []scriptrun.Param{{Name: "A", Type: "string", Pattern: "("}}})
			return err
		}, 422, "body.params[0]", "pattern"},
		{"same parameter twice", func() error {
			_, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "x", Kind: "shell", Body: "true\n", Params: []scriptrun.Param{{Name: "A", Type: "string"}, {Name: "a", Type: "int"}}})
			return err
		}, 422, "body.params[1].name", "params[0]"},
		{"bad tag in filter", func() error {
			_, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "x", Kind: "shell", Body: "true\n", Targets: scriptrun.TargetFilter{AllOf: []string{"no spaces"}}})
			return err
		}, 422, "body.targets", "malformed"},
		{"bad name", func() error {
			_, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "Bad Name", Kind: "shell", Body: "true\n"})
			return err
		}, 422, "body.name", ""},
		{"notice that does not parse", func() error {
			_, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "x", Kind: "shell", Body: "true\n", Notice: "{{.Values"})
			return err
		}, 422, "body.notice", "text/template"},
		{"name taken", func() error {
			_, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "mine", Kind: "shell", Body: "true\n"})
			return err
		}, 409, "body.name", "exists"},
		{"built-in changed by an admin", func() error {
			_, err := e.admin.UpdateScript(ctx, "builtin:dbaas", scriptrun.ScriptBody{Name: "dbaas", Kind: "shell", Body: "true\n"})
			return err
		}, 403, "path.id", "built in"},
		{"tag filter that matches nothing", func() error {
			_, err := e.alice.RunScript(ctx, f.private.ID, scriptrun.RunBody{Tags: []string{"no-vm-has-this"}})
			return err
		}, 422, "body.tags", "no running VM you may run scripts on carries all of them"},
		{"tags the script's filter refuses", func() error {
			_, err := e.admin.RunScript(ctx, "builtin:dbaas", scriptrun.RunBody{Tags: []string{"node"}, Args: map[string]string{"DB_NAME": "a", "DB_USER": "b"}})
			return err
		}, 422, "body.tags", "target filter admits none"},
		{"no targets", func() error {
			_, err := e.alice.RunScript(ctx, f.private.ID, scriptrun.RunBody{})
			return err
		}, 422, "body.vm_ids", "no targets"},
		{"unknown argument", func() error {
			_, err := e.admin.RunScript(ctx, f.private.ID, scriptrun.RunBody{NodeIDs: []string{f.node.ID}, Args: map[string]string{"NOPE": "1"}})
			return err
		}, 422, "body.args", `"NOPE"`},
		{"argument refused by its pattern", func() error {
			_, err := e.admin.RunScript(ctx, "builtin:dbaas", scriptrun.RunBody{NodeIDs: []string{f.node.ID}, Args: map[string]string{"DB_NAME": "x'; DROP DATABASE y; --", "DB_USER": "u"}})
			return err
		}, 422, "body.args", `"DB_NAME"`},
		{"node the script's filter refuses", func() error {
			_, err := e.admin.RunScript(ctx, "builtin:dbaas", scriptrun.RunBody{NodeIDs: []string{f.node.ID}, Args: map[string]string{"DB_NAME": "a", "DB_USER": "b"}})
			return err
		}, 422, "body.node_ids[0]", "does not admit"},
		{"nodes are for admins", func() error {
			_, err := e.alice.RunScript(ctx, f.private.ID, scriptrun.RunBody{NodeIDs: []string{f.node.ID}})
			return err
		}, 403, "body.node_ids[0]", "admins"},
		{"same VM twice", func() error {
			_, err := e.alice.RunScript(ctx, f.private.ID, scriptrun.RunBody{VMIDs: []string{e.aliceVM.ID, e.aliceVM.ID}})
			return err
		}, 422, "body.vm_ids[1]", "twice"},
		{"mail from a daemon without SMTP", func() error {
			_, err := e.admin.RunScript(ctx, f.private.ID, scriptrun.RunBody{NodeIDs: []string{f.node.ID}, MailResult: true})
			return err
		}, 501, "body.mail_result", "no SMTP relay"},
		{"a running VM only", func() error {
			_, err := e.alice.RunScript(ctx, f.private.ID, scriptrun.RunBody{VMIDs: []string{stopped(t, e).ID}})
			return err
		}, 409, "body.vm_ids[0]", "scripts run on running VMs"},
		{"global variable by a user", func() error {
			_, err := e.alice.CreateScriptVariable(ctx, scriptrun.VariableBody{Name: "X", Value: "1", Scope: "global"})
			return err
		}, 403, "body.scope", "admins"},
		{"reserved variable", func() error {
			_, err := e.alice.CreateScriptVariable(ctx, scriptrun.VariableBody{Name: "PATH", Value: "/tmp"})
			return err
		}, 422, "body.name", "reserved"},
		{"NUL in a variable value", func() error {
			_, err := e.alice.CreateScriptVariable(ctx, scriptrun.VariableBody{Name: "NUL", Value: "a\x00b"})
			return err
		}, 422, "body.value", "NUL"},
		{"unhiding a hidden variable", func() error {
			_, err := e.alice.UpdateScriptVariable(ctx, f.variable.ID, "x", false)
			return err
		}, 422, "body.hidden", "stays hidden"},
		{"bad VM tag", func() error {
			_, err := e.alice.SetVMTags(ctx, e.aliceVM.ID, []string{"a", "a"})
			return err
		}, 422, "body.tags", "twice"},
		{"script on create that is not there", func() error {
			b := e.vmBody("oncreate")
			b.Script = &scriptrun.OnCreate{ScriptID: "nope"}
			_, _, err := e.alice.CreateVM(ctx, b, "")
			return err
		}, 404, "body.script.script_id", ""},
		{"script on create the VM's tags refuse", func() error {
			b := e.vmBody("oncreate")
			b.Script = &scriptrun.OnCreate{ScriptID: "builtin:dbaas", Args: map[string]string{"DB_NAME": "a", "DB_USER": "b"}}
			_, _, err := e.alice.CreateVM(ctx, b, "")
			return err
		}, 422, "body.script.script_id", "all of debian"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := problemOf(t, tc.call())
			assert.Equal(t, tc.status, p.Status, p.Error())
			assert.Equal(t, tc.field, p.Field(), p.Error())
			assert.Contains(t, p.Error(), tc.says)
		})
	}
	page, err := e.alice.ListVMs(ctx, client.VMListOptions{ListOptions: client.ListOptions{Limit: 100}})
	require.NoError(t, err)
	for _, vm := range page.Items {
		assert.NotEqual(t, "oncreate", vm.Name, "a refused script on create makes no VM")
	}
	// A refusal of the argument's value never quotes a hidden value.
	_, err = e.admin.RunScript(ctx, f.hidden.ID, scriptrun.RunBody{NodeIDs: []string{f.node.ID}, Args: map[string]string{"PW": "sécret\x01\x00"}})
	p := problemOf(t, err)
	assert.NotContains(t, p.Error(), "sécret")
	_, err = e.alice.RunScript(context.Background(), f.private.ID, scriptrun.RunBody{VMIDs: []string{"nope"}})
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

// TestScriptOnCreateOfAFailedCreate: the run asked with a create waits for
// it on the VM's lock; when the create fails, the run fails saying why,
// and runs nothing.
func TestScriptOnCreateOfAFailedCreate(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	f := e.setupScripts(t)
	small, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "one", ClusterIDs: []string{e.cluster.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/30", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	first := e.vmBody("first")
	first.PoolID = small.ID
	_, task, err := e.alice.CreateVM(ctx, first, "")
	require.NoError(t, err)
	require.NoError(t, client.TaskError(wait(t, e.alice, task.ID, time.Minute)))
	second := e.vmBody("second")
	second.PoolID = small.ID
	second.Script = &scriptrun.OnCreate{ScriptID: f.private.ID}
	order, err := e.alice.CreateVMTask(ctx, second, "")
	require.NoError(t, err)
	require.NotNil(t, order.ScriptRun)
	created := wait(t, e.alice, order.Task.ID, time.Minute)
	assert.Equal(t, "failed", created.State, "the pool has no address left")
	run := wait(t, e.alice, order.ScriptRun.ID, time.Minute)
	assert.Equal(t, "failed", run.State)
	assert.Contains(t, run.Error, "vm second is failed")
	assert.Contains(t, run.Error, "the script does not run")
	rec, err := e.alice.GetScriptRun(ctx, order.ScriptRun.ID)
	require.NoError(t, err)
	assert.Empty(t, rec.Targets, "nothing ran")
	assert.True(t, rec.OnCreate)
	assert.False(t, rec.Finished.Before(created.Finished), "the run ended after the create it waited for")
}

// stopped returns a VM of alice's that is not running.
func stopped(t *testing.T, e *env) model.VM {
	vm, task, err := e.alice.CreateVM(t.Context(), e.vmBody("halted"), "")
	require.NoError(t, err)
	require.NoError(t, client.TaskError(wait(t, e.alice, task.ID, time.Minute)))
	task, err = e.alice.VMAction(t.Context(), vm.ID, "stop")
	require.NoError(t, err)
	require.NoError(t, client.TaskError(wait(t, e.alice, task.ID, time.Minute)))
	return vm
}

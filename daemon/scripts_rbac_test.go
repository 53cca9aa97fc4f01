package daemon_test

import (
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
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/scriptrun"
)

// hiddenMarker is in the body (and notice) of alice's hidden script: no
// answer to anyone but alice and the admin may contain it.
const hiddenMarker = "LICENCE-KEY-7f3a9c"

// scriptFixture is what alice owns of scripts and notifications, and an
// admin's run on a simulated node of a cluster of its own.
type scriptFixture struct {
	private, hidden scriptrun.Script
	variable        scriptrun.Variable
	global          scriptrun.Variable
	subscription    notify.Subscription
	delivery        notify.Delivery
	adminRun        scriptrun.Run
	node            model.Node
}

func hiddenScriptBody() scriptrun.ScriptBody {
	return scriptrun.ScriptBody{Name: "licensed", Visibility: "everyone", Kind: "shell", BodyHidden: true,
		Body:   "# " + hiddenMarker + "\nprintf 'hello %s\\n' \"$WHO\"\n",
		Notice: "key " + hiddenMarker + " for {{.Values.WHO}}",
		Params: []scriptrun.Param{{Name: "WHO", Type: "string", Default: "world"}, {Name: "PW", Type: "password", Default: "default-" + hiddenMarker}}}
}

func (e *env) setupScripts(t *testing.T) *scriptFixture {
	t.Helper()
	ctx := t.Context()
	f := &scriptFixture{}
	var err error
	f.private, err = e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "mine", Kind: "shell", Body: "echo mine\n"})
	require.NoError(t, err)
	f.hidden, err = e.alice.CreateScript(ctx, hiddenScriptBody())
	require.NoError(t, err)
	f.variable, err = e.alice.CreateScriptVariable(ctx, scriptrun.VariableBody{Name: "ALICE_TOKEN", Value: "alice-secret-value", Hidden: true})
	require.NoError(t, err)
	f.global, err = e.admin.CreateScriptVariable(ctx, scriptrun.VariableBody{Name: "SITE", Value: "fra", Scope: "global"})
	require.NoError(t, err)
	sub, err := e.alice.CreateSubscription(ctx, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: notify.ChannelWebhook, WebhookURL: "http://127.0.0.1:9/alice"})
	require.NoError(t, err)
	f.subscription = sub.Subscription
	f.delivery, err = e.alice.TestSubscription(ctx, sub.ID)
	require.NoError(t, err)
	ops, err := e.admin.CreateCluster(ctx, api.ClusterBody{Name: "ops", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	// A simulated node runs no commands: the admin's run on it is
	// recorded, and fails saying so.
	f.node, err = e.admin.AddNode(ctx, api.NodeBody{ClusterID: ops.ID, Name: "sim-ops", Address: "sim", Cores: 1, MemoryMiB: 1024, DiskGiB: 1})
	require.NoError(t, err)
	run, err := e.admin.RunScript(ctx, f.private.ID, scriptrun.RunBody{NodeIDs: []string{f.node.ID}})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	task, err := e.admin.WaitTask(wctx, run.Task.ID)
	require.NoError(t, err)
	require.ErrorIs(t, client.TaskError(task), virtplane.ErrUnavailable)
	rec, err := e.admin.GetScriptRun(ctx, run.Run.ID)
	require.NoError(t, err)
	require.Len(t, rec.Targets, 1)
	require.Contains(t, rec.Targets[0].Error, "not implemented")
	f.adminRun = run.Run
	return f
}

// scriptRBACCases are bob's calls to the script and notification
// endpoints, against alice's and the admin's objects.
func (e *env) scriptRBACCases(t *testing.T) []rbacCase {
	f := e.setupScripts(t)
	vm := e.aliceVM.ID
	hook := notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: notify.ChannelWebhook, WebhookURL: "http://127.0.0.1:9/bob"}
	nodeEvents := hook
	nodeEvents.Events, nodeEvents.All = []string{notify.EventNodeState}, true
	return []rbacCase{
		{"listScripts", "GET", "/v1/scripts", nil, false},
		{"getScript", "GET", "/v1/scripts/" + f.private.ID, nil, true},
		{"getScript", "GET", "/v1/scripts/" + f.hidden.ID, nil, false},
		{"getScript", "GET", "/v1/scripts/builtin:dbaas", nil, false},
		{"createScript", "POST", "/v1/scripts", scriptrun.ScriptBody{Name: "bobs", Kind: "shell", Body: "echo bob\n"}, false},
		{"updateScript", "PUT", "/v1/scripts/" + f.hidden.ID, scriptrun.ScriptBody{Name: "licensed", Kind: "shell", Body: "echo owned\n"}, true},
		{"updateScript", "PUT", "/v1/scripts/" + f.private.ID, scriptrun.ScriptBody{Name: "mine", Kind: "shell", Body: "echo owned\n"}, true},
		{"updateScript", "PUT", "/v1/scripts/builtin:dbaas", scriptrun.ScriptBody{Name: "dbaas", Kind: "shell", Body: "echo owned\n"}, true},
		{"deleteScript", "DELETE", "/v1/scripts/" + f.hidden.ID, nil, true},
		{"deleteScript", "DELETE", "/v1/scripts/builtin:dbaas", nil, true},
		{"runScript", "POST", "/v1/scripts/" + f.private.ID + "/runs", scriptrun.RunBody{VMIDs: []string{vm}}, true},
		{"runScript", "POST", "/v1/scripts/" + f.hidden.ID + "/runs", scriptrun.RunBody{VMIDs: []string{vm}}, true},
		{"runScript", "POST", "/v1/scripts/" + f.hidden.ID + "/runs", scriptrun.RunBody{NodeIDs: []string{f.node.ID}}, true},
		{"listScriptRuns", "GET", "/v1/script-runs", nil, false},
		{"getScriptRun", "GET", "/v1/script-runs/" + f.adminRun.ID, nil, true},
		{"listScriptVariables", "GET", "/v1/script-variables", nil, false},
		{"createScriptVariable", "POST", "/v1/script-variables", scriptrun.VariableBody{Name: "SITE", Value: "evil", Scope: "global"}, true},
		{"createScriptVariable", "POST", "/v1/script-variables", scriptrun.VariableBody{Name: "BOBS", Value: "b"}, false},
		{"getScriptVariable", "GET", "/v1/script-variables/" + f.variable.ID, nil, true},
		{"getScriptVariable", "GET", "/v1/script-variables/" + f.global.ID, nil, false},
		{"updateScriptVariable", "PUT", "/v1/script-variables/" + f.variable.ID, map[string]any{"value": "x", "hidden": true}, true},
		{"updateScriptVariable", "PUT", "/v1/script-variables/" + f.global.ID, map[string]any{"value": "x"}, true},
		{"deleteScriptVariable", "DELETE", "/v1/script-variables/" + f.variable.ID, nil, true},
		{"deleteScriptVariable", "DELETE", "/v1/script-variables/" + f.global.ID, nil, true},
		{"setVMTags", "PUT", "/v1/vms/" + vm + "/tags", map[string]any{"tags": []string{"x"}}, true},
		{"setNodeTags", "PUT", "/v1/nodes/" + f.node.ID + "/tags", map[string]any{"tags": []string{"x"}}, true},
		{"getNotificationChannels", "GET", "/v1/notifications/channels", nil, false},
		{"listSubscriptions", "GET", "/v1/notifications/subscriptions", nil, false},
		{"createSubscription", "POST", "/v1/notifications/subscriptions", hook, false},
		{"createSubscription", "POST", "/v1/notifications/subscriptions", nodeEvents, true},
		{"getSubscription", "GET", "/v1/notifications/subscriptions/" + f.subscription.ID, nil, true},
		{"deleteSubscription", "DELETE", "/v1/notifications/subscriptions/" + f.subscription.ID, nil, true},
		{"testSubscription", "POST", "/v1/notifications/subscriptions/" + f.subscription.ID + "/test", nil, true},
		{"listDeliveries", "GET", "/v1/notifications/deliveries", nil, false},
		{"getDelivery", "GET", "/v1/notifications/deliveries/" + f.delivery.ID, nil, true},
		{"setUserEmail", "PUT", "/v1/users/" + e.aliceID + "/email", map[string]string{"email": "bob@example.test"}, true},
		{"setUserEmail", "PUT", "/v1/users/" + e.bobID + "/email", map[string]string{"email": "bob@example.test"}, false},
	}
}

// TestHiddenScriptBodyReachesOnlyItsOwnerAndAdmins: bob calls every script
// and notification endpoint; no answer, error, event or task log he can
// read holds the hidden body, its notice or a hidden default, and none of
// alice's objects changed. Alice and the admin read the body.
func TestHiddenScriptBodyReachesOnlyItsOwnerAndAdmins(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	cases := e.scriptRBACCases(t)
	sub := e.srv.Events.Subscribe(nil, 10000)
	defer sub.Close()
	var everything strings.Builder
	for _, c := range cases {
		var raw json.RawMessage
		err := e.bob.Do(ctx, c.method, c.path, c.body, &raw)
		if c.denied {
			var p *client.Problem
			require.ErrorAs(t, err, &p, "%s %s", c.method, c.path)
			assert.Contains(t, []int{http.StatusForbidden, http.StatusNotFound}, p.Status, "%s %s: %s", c.method, c.path, p.Error())
			everything.WriteString(p.Error())
		} else {
			require.NoError(t, err, "%s %s", c.method, c.path)
		}
		everything.Write(raw)
	}
	// Bob's own tasks and their logs.
	var tasks client.Page[api.TaskView]
	require.NoError(t, e.bob.Do(ctx, "GET", "/v1/tasks", nil, &tasks))
	for _, tk := range tasks.Items {
		lines, err := e.bob.GetTaskLog(ctx, tk.ID)
		require.NoError(t, err)
		b, _ := json.Marshal(lines)
		everything.Write(b)
	}
	for len(sub.C) > 0 {
		b, _ := json.Marshal(<-sub.C)
		everything.Write(b)
	}
	assert.NotContains(t, everything.String(), hiddenMarker)
	assert.NotContains(t, everything.String(), "alice-secret-value")

	got, err := e.bob.GetScript(ctx, e.scriptFix(t, cases).hidden.ID)
	require.NoError(t, err)
	assert.Empty(t, got.Body)
	assert.Empty(t, got.Notice)
	assert.True(t, got.Redacted)
	assert.Equal(t, "world", got.Params[0].Default, "defaults of visible parameters stay")
	assert.Empty(t, got.Params[1].Default, "a hidden parameter's default goes with the body")
	for _, c := range []*client.Client{e.alice, e.admin} {
		s, err := c.GetScript(ctx, got.ID)
		require.NoError(t, err)
		assert.Contains(t, s.Body, hiddenMarker)
		assert.Contains(t, s.Notice, hiddenMarker)
		assert.False(t, s.Redacted)
	}
	s, err := e.alice.GetScript(ctx, got.ID)
	require.NoError(t, err)
	assert.Equal(t, hiddenScriptBody().Body, s.Body, "bob's update changed nothing")
	v, err := e.alice.GetScriptVariable(ctx, e.scriptFix(t, cases).variable.ID)
	require.NoError(t, err)
	assert.Empty(t, v.Value, "a hidden value is shown to no one, its owner included")
}

// scriptFix reads the fixture back from the cases (the hidden script's and
// the variable's IDs are in their paths).
func (e *env) scriptFix(t *testing.T, cases []rbacCase) *scriptFixture {
	f := &scriptFixture{}
	for _, c := range cases {
		switch {
		case c.op == "getScript" && c.method == "GET" && !c.denied && !strings.Contains(c.path, "builtin"):
			f.hidden.ID = strings.TrimPrefix(c.path, "/v1/scripts/")
		case c.op == "getScriptVariable" && c.denied:
			f.variable.ID = strings.TrimPrefix(c.path, "/v1/script-variables/")
		}
	}
	require.NotEmpty(t, f.hidden.ID)
	return f
}

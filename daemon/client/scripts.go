package client

import (
	"context"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/scriptrun"
)

// CreateVMTask asks for a VM like CreateVM and returns the whole answer,
// with the script run the create asked for.
func (c *Client) CreateVMTask(ctx context.Context, b api.VMCreateBody, idempotencyKey string) (VMTask, error) {
	var out VMTask
	var h []string
	if idempotencyKey != "" {
		h = []string{"Idempotency-Key", idempotencyKey}
	}
	err := c.call(ctx, "createVM", nil, nil, b, &out, h...)
	return out, err
}

// ListScripts reads a page of the scripts the caller may run (the
// built-ins come on the first page).
func (c *Client) ListScripts(ctx context.Context, after string, limit int) (Page[scriptrun.Script], error) {
	var p Page[scriptrun.Script]
	err := c.call(ctx, "listScripts", nil, pageQuery(ListOptions{After: after, Limit: limit}), nil, &p)
	return p, err
}

// GetScript reads a script.
func (c *Client) GetScript(ctx context.Context, id string) (scriptrun.Script, error) {
	var s scriptrun.Script
	err := c.call(ctx, "getScript", []string{id}, nil, nil, &s)
	return s, err
}

// CreateScript adds a script owned by the caller.
func (c *Client) CreateScript(ctx context.Context, b scriptrun.ScriptBody) (scriptrun.Script, error) {
	var s scriptrun.Script
	err := c.call(ctx, "createScript", nil, nil, b, &s)
	return s, err
}

// UpdateScript replaces a script's settings.
func (c *Client) UpdateScript(ctx context.Context, id string, b scriptrun.ScriptBody) (scriptrun.Script, error) {
	var s scriptrun.Script
	err := c.call(ctx, "updateScript", []string{id}, nil, b, &s)
	return s, err
}

// DeleteScript removes a script.
func (c *Client) DeleteScript(ctx context.Context, id string) error {
	return c.call(ctx, "deleteScript", []string{id}, nil, nil, nil)
}

// ScriptRunTask is a run and its task.
type ScriptRunTask struct {
	Run  scriptrun.Run `json:"run"`
	Task api.TaskView  `json:"task"`
}

// RunScript starts a run of a script.
func (c *Client) RunScript(ctx context.Context, id string, b scriptrun.RunBody) (ScriptRunTask, error) {
	var out ScriptRunTask
	err := c.call(ctx, "runScript", []string{id}, nil, b, &out)
	return out, err
}

// GetScriptRun reads a run: state, exit codes and masked output.
func (c *Client) GetScriptRun(ctx context.Context, id string) (scriptrun.Run, error) {
	var r scriptrun.Run
	err := c.call(ctx, "getScriptRun", []string{id}, nil, nil, &r)
	return r, err
}

// ListScriptRuns reads a page of the caller's runs.
func (c *Client) ListScriptRuns(ctx context.Context, after string, limit int) (Page[scriptrun.Run], error) {
	var p Page[scriptrun.Run]
	err := c.call(ctx, "listScriptRuns", nil, pageQuery(ListOptions{After: after, Limit: limit}), nil, &p)
	return p, err
}

// ListScriptVariables reads the globals and the caller's locals.
func (c *Client) ListScriptVariables(ctx context.Context) ([]scriptrun.Variable, error) {
	var p Page[scriptrun.Variable]
	err := c.call(ctx, "listScriptVariables", nil, nil, nil, &p)
	return p.Items, err
}

// CreateScriptVariable adds a variable.
func (c *Client) CreateScriptVariable(ctx context.Context, b scriptrun.VariableBody) (scriptrun.Variable, error) {
	var v scriptrun.Variable
	err := c.call(ctx, "createScriptVariable", nil, nil, b, &v)
	return v, err
}

// GetScriptVariable reads a variable.
func (c *Client) GetScriptVariable(ctx context.Context, id string) (scriptrun.Variable, error) {
	var v scriptrun.Variable
	err := c.call(ctx, "getScriptVariable", []string{id}, nil, nil, &v)
	return v, err
}

// UpdateScriptVariable sets a variable's value.
func (c *Client) UpdateScriptVariable(ctx context.Context, id, value string, hidden bool) (scriptrun.Variable, error) {
	var v scriptrun.Variable
	err := c.call(ctx, "updateScriptVariable", []string{id}, nil, map[string]any{"value": value, "hidden": hidden}, &v)
	return v, err
}

// DeleteScriptVariable removes a variable.
func (c *Client) DeleteScriptVariable(ctx context.Context, id string) error {
	return c.call(ctx, "deleteScriptVariable", []string{id}, nil, nil, nil)
}

// SetVMTags sets a VM's tags.
func (c *Client) SetVMTags(ctx context.Context, id string, tags []string) (model.VM, error) {
	var vm model.VM
	err := c.call(ctx, "setVMTags", []string{id}, nil, map[string]any{"tags": tags}, &vm)
	return vm, err
}

// SetNodeTags sets a node's tags (admin).
func (c *Client) SetNodeTags(ctx context.Context, id string, tags []string) (model.Node, error) {
	var n model.Node
	err := c.call(ctx, "setNodeTags", []string{id}, nil, map[string]any{"tags": tags}, &n)
	return n, err
}

// SetUserEmail sets where a user's mails go.
func (c *Client) SetUserEmail(ctx context.Context, userID, email string) (model.User, error) {
	var u model.User
	err := c.call(ctx, "setUserEmail", []string{userID}, nil, map[string]string{"email": email}, &u)
	return u, err
}

// NotificationChannels returns the channels the daemon sends on and the
// event types subscriptions may name.
func (c *Client) NotificationChannels(ctx context.Context) (channels, events []string, err error) {
	var out struct {
		Channels []string `json:"channels"`
		Events   []string `json:"events"`
	}
	err = c.call(ctx, "getNotificationChannels", nil, nil, nil, &out)
	return out.Channels, out.Events, err
}

// Subscribed is a new subscription and, for a webhook, its secret (shown once).
type Subscribed struct {
	notify.Subscription
	WebhookSecret string `json:"webhook_secret"`
}

// CreateSubscription subscribes the caller to events.
func (c *Client) CreateSubscription(ctx context.Context, b notify.SubscriptionBody) (Subscribed, error) {
	var out Subscribed
	err := c.call(ctx, "createSubscription", nil, nil, b, &out)
	return out, err
}

// ListSubscriptions reads the caller's subscriptions (admins: all).
func (c *Client) ListSubscriptions(ctx context.Context) ([]notify.Subscription, error) {
	var p Page[notify.Subscription]
	err := c.call(ctx, "listSubscriptions", nil, nil, nil, &p)
	return p.Items, err
}

// GetSubscription reads a subscription.
func (c *Client) GetSubscription(ctx context.Context, id string) (notify.Subscription, error) {
	var s notify.Subscription
	err := c.call(ctx, "getSubscription", []string{id}, nil, nil, &s)
	return s, err
}

// DeleteSubscription removes a subscription.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	return c.call(ctx, "deleteSubscription", []string{id}, nil, nil, nil)
}

// TestSubscription sends a test notification and returns its delivery.
func (c *Client) TestSubscription(ctx context.Context, id string) (notify.Delivery, error) {
	var d notify.Delivery
	err := c.call(ctx, "testSubscription", []string{id}, nil, nil, &d)
	return d, err
}

// ListDeliveries reads a page of the delivery log.
func (c *Client) ListDeliveries(ctx context.Context, after string, limit int) (Page[notify.Delivery], error) {
	var p Page[notify.Delivery]
	err := c.call(ctx, "listDeliveries", nil, pageQuery(ListOptions{After: after, Limit: limit}), nil, &p)
	return p, err
}

// GetDelivery reads one delivery and its attempts.
func (c *Client) GetDelivery(ctx context.Context, id string) (notify.Delivery, error) {
	var d notify.Delivery
	err := c.call(ctx, "getDelivery", []string{id}, nil, nil, &d)
	return d, err
}

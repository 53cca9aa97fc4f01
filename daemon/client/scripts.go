package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/scriptrun"
)

func pageQuery(after string, limit int) string {
	return fmt.Sprintf("?after=%s&limit=%d", url.QueryEscape(after), limit)
}

// CreateVMTask asks for a VM like CreateVM and returns the whole answer,
// with the script run the create asked for.
func (c *Client) CreateVMTask(ctx context.Context, b api.VMCreateBody, idempotencyKey string) (VMTask, error) {
	var out VMTask
	var h []string
	if idempotencyKey != "" {
		h = []string{"Idempotency-Key", idempotencyKey}
	}
	err := c.Do(ctx, http.MethodPost, "/v1/vms", b, &out, h...)
	return out, err
}

// TaskLog reads a task's log.
func (c *Client) TaskLog(ctx context.Context, id string) ([]api.LogLineView, error) {
	var p Page[api.LogLineView]
	err := c.Do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id)+"/log", nil, &p)
	return p.Items, err
}

// CancelTask asks a task to stop.
func (c *Client) CancelTask(ctx context.Context, id string) (api.TaskView, error) {
	var t api.TaskView
	err := c.Do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/cancel", nil, &t)
	return t, err
}

// ListScripts reads a page of the scripts the caller may run (the
// built-ins come on the first page).
func (c *Client) ListScripts(ctx context.Context, after string, limit int) (Page[scriptrun.Script], error) {
	var p Page[scriptrun.Script]
	err := c.Do(ctx, http.MethodGet, "/v1/scripts"+pageQuery(after, limit), nil, &p)
	return p, err
}

// GetScript reads a script.
func (c *Client) GetScript(ctx context.Context, id string) (scriptrun.Script, error) {
	var s scriptrun.Script
	err := c.Do(ctx, http.MethodGet, "/v1/scripts/"+url.PathEscape(id), nil, &s)
	return s, err
}

// CreateScript adds a script owned by the caller.
func (c *Client) CreateScript(ctx context.Context, b scriptrun.ScriptBody) (scriptrun.Script, error) {
	var s scriptrun.Script
	err := c.Do(ctx, http.MethodPost, "/v1/scripts", b, &s)
	return s, err
}

// UpdateScript replaces a script's settings.
func (c *Client) UpdateScript(ctx context.Context, id string, b scriptrun.ScriptBody) (scriptrun.Script, error) {
	var s scriptrun.Script
	err := c.Do(ctx, http.MethodPut, "/v1/scripts/"+url.PathEscape(id), b, &s)
	return s, err
}

// DeleteScript removes a script.
func (c *Client) DeleteScript(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/scripts/"+url.PathEscape(id), nil, nil)
}

// ScriptRunTask is a run and its task.
type ScriptRunTask struct {
	Run  scriptrun.Run `json:"run"`
	Task api.TaskView  `json:"task"`
}

// RunScript starts a run of a script.
func (c *Client) RunScript(ctx context.Context, id string, b scriptrun.RunBody) (ScriptRunTask, error) {
	var out ScriptRunTask
	err := c.Do(ctx, http.MethodPost, "/v1/scripts/"+url.PathEscape(id)+"/runs", b, &out)
	return out, err
}

// GetScriptRun reads a run: state, exit codes and masked output.
func (c *Client) GetScriptRun(ctx context.Context, id string) (scriptrun.Run, error) {
	var r scriptrun.Run
	err := c.Do(ctx, http.MethodGet, "/v1/script-runs/"+url.PathEscape(id), nil, &r)
	return r, err
}

// ListScriptRuns reads a page of the caller's runs.
func (c *Client) ListScriptRuns(ctx context.Context, after string, limit int) (Page[scriptrun.Run], error) {
	var p Page[scriptrun.Run]
	err := c.Do(ctx, http.MethodGet, "/v1/script-runs"+pageQuery(after, limit), nil, &p)
	return p, err
}

// ListScriptVariables reads the globals and the caller's locals.
func (c *Client) ListScriptVariables(ctx context.Context) ([]scriptrun.Variable, error) {
	var p Page[scriptrun.Variable]
	err := c.Do(ctx, http.MethodGet, "/v1/script-variables", nil, &p)
	return p.Items, err
}

// CreateScriptVariable adds a variable.
func (c *Client) CreateScriptVariable(ctx context.Context, b scriptrun.VariableBody) (scriptrun.Variable, error) {
	var v scriptrun.Variable
	err := c.Do(ctx, http.MethodPost, "/v1/script-variables", b, &v)
	return v, err
}

// GetScriptVariable reads a variable.
func (c *Client) GetScriptVariable(ctx context.Context, id string) (scriptrun.Variable, error) {
	var v scriptrun.Variable
	err := c.Do(ctx, http.MethodGet, "/v1/script-variables/"+url.PathEscape(id), nil, &v)
	return v, err
}

// UpdateScriptVariable sets a variable's value.
func (c *Client) UpdateScriptVariable(ctx context.Context, id, value string, hidden bool) (scriptrun.Variable, error) {
	var v scriptrun.Variable
	err := c.Do(ctx, http.MethodPut, "/v1/script-variables/"+url.PathEscape(id), map[string]any{"value": value, "hidden": hidden}, &v)
	return v, err
}

// DeleteScriptVariable removes a variable.
func (c *Client) DeleteScriptVariable(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/script-variables/"+url.PathEscape(id), nil, nil)
}

// SetVMTags sets a VM's tags.
func (c *Client) SetVMTags(ctx context.Context, id string, tags []string) (model.VM, error) {
	var vm model.VM
	err := c.Do(ctx, http.MethodPut, "/v1/vms/"+url.PathEscape(id)+"/tags", map[string]any{"tags": tags}, &vm)
	return vm, err
}

// SetNodeTags sets a node's tags (admin).
func (c *Client) SetNodeTags(ctx context.Context, id string, tags []string) (model.Node, error) {
	var n model.Node
	err := c.Do(ctx, http.MethodPut, "/v1/nodes/"+url.PathEscape(id)+"/tags", map[string]any{"tags": tags}, &n)
	return n, err
}

// SetUserEmail sets where a user's mails go.
func (c *Client) SetUserEmail(ctx context.Context, userID, email string) (model.User, error) {
	var u model.User
	err := c.Do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(userID)+"/email", map[string]string{"email": email}, &u)
	return u, err
}

// NotificationChannels returns the channels the daemon sends on and the
// event types subscriptions may name.
func (c *Client) NotificationChannels(ctx context.Context) (channels, events []string, err error) {
	var out struct {
		Channels []string `json:"channels"`
		Events   []string `json:"events"`
	}
	err = c.Do(ctx, http.MethodGet, "/v1/notifications/channels", nil, &out)
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
	err := c.Do(ctx, http.MethodPost, "/v1/notifications/subscriptions", b, &out)
	return out, err
}

// ListSubscriptions reads the caller's subscriptions (admins: all).
func (c *Client) ListSubscriptions(ctx context.Context) ([]notify.Subscription, error) {
	var p Page[notify.Subscription]
	err := c.Do(ctx, http.MethodGet, "/v1/notifications/subscriptions", nil, &p)
	return p.Items, err
}

// GetSubscription reads a subscription.
func (c *Client) GetSubscription(ctx context.Context, id string) (notify.Subscription, error) {
	var s notify.Subscription
	err := c.Do(ctx, http.MethodGet, "/v1/notifications/subscriptions/"+url.PathEscape(id), nil, &s)
	return s, err
}

// DeleteSubscription removes a subscription.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/notifications/subscriptions/"+url.PathEscape(id), nil, nil)
}

// TestSubscription sends a test notification and returns its delivery.
func (c *Client) TestSubscription(ctx context.Context, id string) (notify.Delivery, error) {
	var d notify.Delivery
	err := c.Do(ctx, http.MethodPost, "/v1/notifications/subscriptions/"+url.PathEscape(id)+"/test", nil, &d)
	return d, err
}

// ListDeliveries reads a page of the delivery log.
func (c *Client) ListDeliveries(ctx context.Context, after string, limit int) (Page[notify.Delivery], error) {
	var p Page[notify.Delivery]
	err := c.Do(ctx, http.MethodGet, "/v1/notifications/deliveries"+pageQuery(after, limit), nil, &p)
	return p, err
}

// GetDelivery reads one delivery and its attempts.
func (c *Client) GetDelivery(ctx context.Context, id string) (notify.Delivery, error) {
	var d notify.Delivery
	err := c.Do(ctx, http.MethodGet, "/v1/notifications/deliveries/"+url.PathEscape(id), nil, &d)
	return d, err
}

// Package client is a thin Go client of the daemon's REST API, used by the
// daemon's tests and by billing integrations (see examples/billing).
// Errors come back as *Problem, which wraps the virtplane error class of its
// HTTP status, so errors.Is(err, virtplane.ErrNotFound) works on the client
// side too.
//
//	c := client.New("http://127.0.0.1:8080", token)
//	vm, task, err := c.CreateVM(ctx, api.VMCreateBody{...}, "order-1234")
//	task, err = c.WaitTask(ctx, task.ID)
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/scriptrun"
)

// Client calls one daemon.
type Client struct {
	base  string
	token string
	http  *http.Client
	// Poll is the interval of WaitTask.
	Poll time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (timeouts, TLS).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// New returns a client of the daemon at base ("http://host:port") that
// authenticates with token (may be empty for Login).
func New(base, token string, opts ...Option) *Client {
	c := &Client{base: strings.TrimSuffix(base, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}, Poll: 100 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	return c
}

// WithToken returns a copy of the client that uses another token.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// Problem is an RFC 9457 problem document the daemon answered.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

func (p *Problem) Error() string {
	s := fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	for _, e := range p.Errors {
		s += fmt.Sprintf(" [%s: %s]", e.Location, e.Message)
	}
	return s
}

// Field returns the location of the first field error ("body.name"), or "".
func (p *Problem) Field() string {
	if len(p.Errors) == 0 {
		return ""
	}
	return p.Errors[0].Location
}

// Unwrap returns the virtplane error class of the status.
func (p *Problem) Unwrap() error {
	switch p.Status {
	case http.StatusNotFound:
		return virtplane.ErrNotFound
	case http.StatusConflict:
		if strings.HasSuffix(p.Type, "already-exists") {
			return virtplane.ErrAlreadyExists
		}
		return virtplane.ErrConflict
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		return virtplane.ErrInvalidArgument
	case http.StatusServiceUnavailable:
		return virtplane.ErrUnavailable
	case http.StatusInsufficientStorage:
		return virtplane.ErrResourceExhausted
	case http.StatusNotImplemented:
		return virtplane.ErrNotImplemented
	case http.StatusForbidden:
		return virtplane.ErrPermissionDenied
	case http.StatusUnauthorized:
		return virtplane.ErrUnauthenticated
	case http.StatusGatewayTimeout:
		return virtplane.ErrTimeout
	}
	return nil
}

// Do sends a request with a JSON body (nil for none) and decodes the JSON
// answer into out (nil to discard). headers are extra request headers.
func (c *Client) Do(ctx context.Context, method, path string, in, out any, headers ...string) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "request body: %v", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "request %s %s: %v", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "%s %s: reading the answer: %v", method, path, err)
	}
	if resp.StatusCode >= 400 {
		p := &Problem{Status: resp.StatusCode, Title: resp.Status}
		_ = json.Unmarshal(data, p)
		return p
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return virtplane.Errorf(virtplane.ErrUnavailable, "%s %s: decoding the answer: %v", method, path, err)
		}
	}
	return nil
}

// Page is one page of a list.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// Login signs in and returns a token.
func (c *Client) Login(ctx context.Context, name, password string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := c.Do(ctx, http.MethodPost, "/v1/login", map[string]string{"name": name, "password": password}, &out)
	return out.Token, err
}

// CreateUser creates a local user (admin).
func (c *Client) CreateUser(ctx context.Context, name, password string, role model.Role) (model.User, error) {
	var u model.User
	err := c.Do(ctx, http.MethodPost, "/v1/users", map[string]any{"name": name, "password": password, "role": role}, &u)
	return u, err
}

// CreateCluster creates a cluster (admin).
func (c *Client) CreateCluster(ctx context.Context, b api.ClusterBody) (model.Cluster, error) {
	var out model.Cluster
	err := c.Do(ctx, http.MethodPost, "/v1/clusters", b, &out)
	return out, err
}

// AddNode adds a node (admin).
func (c *Client) AddNode(ctx context.Context, b api.NodeBody) (model.Node, error) {
	var out model.Node
	err := c.Do(ctx, http.MethodPost, "/v1/nodes", b, &out)
	return out, err
}

// CreatePool creates an IP pool (admin).
func (c *Client) CreatePool(ctx context.Context, b api.PoolBody) (model.IPPool, error) {
	var out model.IPPool
	err := c.Do(ctx, http.MethodPost, "/v1/ippools", b, &out)
	return out, err
}

// CreateImage registers an image (admin).
func (c *Client) CreateImage(ctx context.Context, b api.ImageBody) (model.Image, error) {
	var out model.Image
	err := c.Do(ctx, http.MethodPost, "/v1/images", b, &out)
	return out, err
}

// ImageTask is an image and the task changing it.
type ImageTask struct {
	Image model.Image  `json:"image"`
	Task  api.TaskView `json:"task"`
}

// GetImage reads an image.
func (c *Client) GetImage(ctx context.Context, id string) (model.Image, error) {
	var out model.Image
	err := c.Do(ctx, http.MethodGet, "/v1/images/"+url.PathEscape(id), nil, &out)
	return out, err
}

// ImportImage starts the import of an image into the storage of a
// cluster's nodes or of one node (admin).
func (c *Client) ImportImage(ctx context.Context, id string, b api.ImageImportBody) (model.Image, api.TaskView, error) {
	var out ImageTask
	err := c.Do(ctx, http.MethodPost, "/v1/images/"+url.PathEscape(id)+"/import", b, &out)
	return out.Image, out.Task, err
}

// DeleteImage starts the deletion of an image and its imported volumes (admin).
func (c *Client) DeleteImage(ctx context.Context, id string) (api.TaskView, error) {
	var out ImageTask
	err := c.Do(ctx, http.MethodDelete, "/v1/images/"+url.PathEscape(id), nil, &out)
	return out.Task, err
}

// VMTask is a VM and the task changing it.
type VMTask struct {
	VM   model.VM     `json:"vm"`
	Task api.TaskView `json:"task"`
	// ScriptRun is the run a create asked for (VMCreateBody.Script).
	ScriptRun *scriptrun.Run `json:"script_run,omitempty"`
}

// CreateVM asks for a VM; a non-empty idempotencyKey makes retries return
// the first request's VM and task.
func (c *Client) CreateVM(ctx context.Context, b api.VMCreateBody, idempotencyKey string) (model.VM, api.TaskView, error) {
	var out VMTask
	var h []string
	if idempotencyKey != "" {
		h = []string{"Idempotency-Key", idempotencyKey}
	}
	err := c.Do(ctx, http.MethodPost, "/v1/vms", b, &out, h...)
	return out.VM, out.Task, err
}

// GetVM reads a VM.
func (c *Client) GetVM(ctx context.Context, id string) (model.VM, error) {
	var vm model.VM
	err := c.Do(ctx, http.MethodGet, "/v1/vms/"+url.PathEscape(id), nil, &vm)
	return vm, err
}

// ListVMs reads one page of the caller's VMs.
func (c *Client) ListVMs(ctx context.Context, after string, limit int) (Page[model.VM], error) {
	var p Page[model.VM]
	err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/vms?after=%s&limit=%d", url.QueryEscape(after), limit), nil, &p)
	return p, err
}

// VMAction starts a task on a VM: "start", "stop", "reboot", "shutdown",
// "suspend", "resume", "reset".
func (c *Client) VMAction(ctx context.Context, id, action string) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(id)+"/"+action, nil, &out)
	return out.Task, err
}

// Snapshot starts a snapshot of a VM.
func (c *Client) Snapshot(ctx context.Context, id, name string) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(id)+"/snapshots", map[string]string{"name": name}, &out)
	return out.Task, err
}

// ResizeVM changes a VM's CPUs, memory (a zero leaves it) and grows its
// disk to diskGiB (0 leaves it; disks only grow).
func (c *Client) ResizeVM(ctx context.Context, id string, cpus int, memoryMiB, diskGiB int64) (api.TaskView, error) {
	var out VMTask
	body := map[string]int64{}
	for k, v := range map[string]int64{"cpus": int64(cpus), "memory_mib": memoryMiB, "disk_gib": diskGiB} {
		if v != 0 {
			body[k] = v
		}
	}
	err := c.Do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(id)+"/resize", body, &out)
	return out.Task, err
}

// MigrateVM starts the move of a VM to node nodeID, or to the node the
// scheduler picks when nodeID is empty (admin).
func (c *Client) MigrateVM(ctx context.Context, id, nodeID string) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(id)+"/migrate", map[string]string{"node_id": nodeID}, &out)
	return out.Task, err
}

// DeleteVM starts the deletion of a VM.
func (c *Client) DeleteVM(ctx context.Context, id string) (api.TaskView, error) {
	var out VMTask
	err := c.Do(ctx, http.MethodDelete, "/v1/vms/"+url.PathEscape(id), nil, &out)
	return out.Task, err
}

// GetTask reads a task.
func (c *Client) GetTask(ctx context.Context, id string) (api.TaskView, error) {
	var t api.TaskView
	err := c.Do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id), nil, &t)
	return t, err
}

// WaitTask polls a task until it is terminal.
func (c *Client) WaitTask(ctx context.Context, id string) (api.TaskView, error) {
	for {
		t, err := c.GetTask(ctx, id)
		if err != nil {
			return t, err
		}
		switch t.State {
		case "succeeded", "failed", "canceled":
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, virtplane.Errorf(virtplane.ErrTimeout, "task %s still %s: %v", id, t.State, ctx.Err())
		case <-time.After(c.Poll):
		}
	}
}

// TaskError returns nil for a succeeded task and an error carrying the
// task's error and class otherwise.
func TaskError(t api.TaskView) error {
	if t.State == "succeeded" {
		return nil
	}
	class := virtplane.ErrConflict
	for _, c := range []error{virtplane.ErrNotFound, virtplane.ErrAlreadyExists, virtplane.ErrConflict, virtplane.ErrInvalidArgument,
		virtplane.ErrUnavailable, virtplane.ErrResourceExhausted, virtplane.ErrNotImplemented, virtplane.ErrPermissionDenied,
		virtplane.ErrUnauthenticated, virtplane.ErrCanceled, virtplane.ErrTimeout} {
		if c.Error() == t.ErrorClass {
			class = c
		}
	}
	return virtplane.Errorf(class, "task %s (%s) %s: %s", t.ID, t.Kind, t.State, t.Error)
}

// BaseURL is the daemon's URL this client calls.
func (c *Client) BaseURL() string { return c.base }

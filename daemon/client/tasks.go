package client

import (
	"context"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
)

// TaskListOptions pages the tasks; State and Target filter them.
type TaskListOptions struct {
	ListOptions
	State  string // queued, running, undoing, succeeded, failed, canceled
	Target string // vm/ID, image/ID, ...
}

// ListTasks reads one page of the caller's tasks (admins: everyone's).
func (c *Client) ListTasks(ctx context.Context, o TaskListOptions) (Page[api.TaskView], error) {
	var p Page[api.TaskView]
	q := pageQuery(o.ListOptions)
	if o.State != "" {
		q.Set("state", o.State)
	}
	if o.Target != "" {
		q.Set("target", o.Target)
	}
	err := c.call(ctx, "listTasks", nil, q, nil, &p)
	return p, err
}

// GetTask reads a task.
func (c *Client) GetTask(ctx context.Context, id string) (api.TaskView, error) {
	var t api.TaskView
	err := c.call(ctx, "getTask", []string{id}, nil, nil, &t)
	return t, err
}

// GetTaskLog reads a task's log.
func (c *Client) GetTaskLog(ctx context.Context, id string) ([]api.LogLineView, error) {
	var p Page[api.LogLineView]
	err := c.call(ctx, "getTaskLog", []string{id}, nil, nil, &p)
	return p.Items, err
}

// CancelTask asks a task to stop: a queued task ends, a running one rolls back.
func (c *Client) CancelTask(ctx context.Context, id string) (api.TaskView, error) {
	var t api.TaskView
	err := c.call(ctx, "cancelTask", []string{id}, nil, nil, &t)
	return t, err
}

// Terminal reports whether a task state is final.
func Terminal(state string) bool {
	return state == "succeeded" || state == "failed" || state == "canceled"
}

// WaitTask polls a task until it is terminal.
func (c *Client) WaitTask(ctx context.Context, id string) (api.TaskView, error) {
	t := c.Task(api.TaskView{ID: id})
	err := t.poll(ctx, nil)
	return t.View, err
}

// Task is a task of the daemon being followed, in the style of an Incus
// operation: Wait blocks until it ends and returns its error.
//
//	_, tv, err := c.CreateVM(ctx, body, key)
//	err = c.Task(tv).Wait(ctx) // nil once the VM runs
type Task struct {
	// View is the task as last read.
	View api.TaskView
	c    *Client
}

// Task follows the task v (as an operation answered it).
func (c *Client) Task(v api.TaskView) *Task { return &Task{View: v, c: c} }

// Wait blocks until the task ends and returns nil when it succeeded, or
// the task's error with its class (errors.Is(err, virtplane.ErrResourceExhausted)).
// A ctx that ends first gives ErrTimeout; the task goes on in the daemon.
func (t *Task) Wait(ctx context.Context) error { return t.WaitProgress(ctx, nil) }

// WaitProgress is Wait that calls progress with each new view of the task
// (state, progress percentage, message) while it runs.
func (t *Task) WaitProgress(ctx context.Context, progress func(api.TaskView)) error {
	if err := t.poll(ctx, progress); err != nil {
		return err
	}
	return TaskError(t.View)
}

// Cancel asks the daemon to cancel the task.
func (t *Task) Cancel(ctx context.Context) error {
	v, err := t.c.CancelTask(ctx, t.View.ID)
	if err == nil {
		t.View = v
	}
	return err
}

func (t *Task) poll(ctx context.Context, progress func(api.TaskView)) error {
	var last api.TaskView
	for {
		v, err := t.c.GetTask(ctx, t.View.ID)
		if err != nil {
			if ctx.Err() != nil {
				return virtplane.Errorf(virtplane.ErrTimeout, "task %s still %s: %v", t.View.ID, t.View.State, ctx.Err())
			}
			return err
		}
		t.View = v
		if progress != nil && (v.State != last.State || v.Progress != last.Progress || v.Message != last.Message) {
			progress(v)
		}
		last = v
		if Terminal(v.State) {
			return nil
		}
		select {
		case <-ctx.Done():
			return virtplane.Errorf(virtplane.ErrTimeout, "task %s still %s: %v", t.View.ID, v.State, ctx.Err())
		case <-time.After(t.c.Poll):
		}
	}
}

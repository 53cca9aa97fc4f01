package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// LogLineView is one line of a task's log.
type LogLineView struct {
	Seq  int       `json:"seq"`
	At   time.Time `json:"at"`
	Line string    `json:"line"`
}

func (s *Server) registerTasks() {
	tags := []string{"tasks"}
	type listTasks struct {
		PageInput
		State  string `query:"state" enum:"queued,running,undoing,succeeded,failed,canceled,"`
		Target string `query:"target" doc:"only tasks on this object (vm/ID)"`
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "listTasks", Method: http.MethodGet, Path: "/v1/tasks", Tags: tags, Summary: "List the caller's tasks (admins: all)",
	}, func(ctx context.Context, in *listTasks) (*struct{ Body Page[TaskView] }, error) {
		p := principal(ctx)
		f := store.TaskFilter{Target: in.Target, After: in.After, Limit: in.Limit}
		if f.Limit <= 0 {
			f.Limit = 100
		}
		if !p.Admin() {
			f.Owner = p.UserID
		}
		if in.State != "" {
			f.States = []store.TaskState{store.TaskState(in.State)}
		}
		ts, err := s.st.ListTasks(ctx, f)
		if err != nil {
			return nil, problem(err)
		}
		out := Page[TaskView]{Items: make([]TaskView, 0, len(ts))}
		for _, t := range ts {
			out.Items = append(out.Items, viewTask(s.cfg.Tasks.Live(t)))
		}
		if len(ts) == f.Limit {
			out.Next = ts[len(ts)-1].ID
		}
		return &struct{ Body Page[TaskView] }{out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getTask", Method: http.MethodGet, Path: "/v1/tasks/{id}", Tags: tags, Summary: "Get a task",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body TaskView }, error) {
		t, err := s.task(ctx, in.ID)
		return &struct{ Body TaskView }{viewTask(t)}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getTaskLog", Method: http.MethodGet, Path: "/v1/tasks/{id}/log", Tags: tags, Summary: "A task's log",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body Page[LogLineView] }, error) {
		if _, err := s.task(ctx, in.ID); err != nil {
			return nil, problem(err)
		}
		lines, err := s.st.TaskLog(ctx, in.ID)
		out := Page[LogLineView]{Items: make([]LogLineView, 0, len(lines))}
		for _, l := range lines {
			out.Items = append(out.Items, LogLineView(l))
		}
		return &struct{ Body Page[LogLineView] }{out}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "cancelTask", Method: http.MethodPost, Path: "/v1/tasks/{id}/cancel", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary: "Cancel a task: a queued task ends, a running one rolls back",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body TaskView }, error) {
		if _, err := s.task(ctx, in.ID); err != nil {
			return nil, problem(err)
		}
		if err := s.cfg.Tasks.Cancel(ctx, in.ID); err != nil {
			return nil, problem(field("path.id", err))
		}
		t, err := s.st.GetTask(ctx, in.ID)
		return &struct{ Body TaskView }{viewTask(t)}, problem(err)
	})
}

// task reads a task the caller may see.
func (s *Server) task(ctx context.Context, id string) (store.Task, error) {
	t, err := s.st.GetTask(ctx, id)
	if err != nil {
		return t, field("path.id", err)
	}
	if !principal(ctx).CanAccess(t.Owner) {
		return store.Task{}, field("path.id", virtplane.Errorf(virtplane.ErrNotFound, "task %q", id))
	}
	return s.cfg.Tasks.Live(t), nil
}

package tasks

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// Run is a task while its handler runs.
type Run struct {
	e      *Engine
	task   store.Task
	result []byte
}

// Task returns the task as it was when its handler started, with the
// progress recorded since.
func (r *Run) Task() store.Task { return r.task }

// Input decodes the task's input into v.
func (r *Run) Input(v any) error {
	if err := json.Unmarshal(r.task.Input, v); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "task %s input: %v", r.task.ID, err)
	}
	return nil
}

// Undo is the recorded inverse of a step: the name of an action registered
// with OnUndo and its arguments.
type Undo struct {
	Action string
	Args   any
}

// UndoAction returns an Undo; NoUndo is a step that changes nothing outside.
func UndoAction(action string, args any) Undo { return Undo{Action: action, Args: args} }

// NoUndo marks a step that needs no undo.
var NoUndo = Undo{}

// Step runs one step of the task: it records the undo and a log line
// durably, then calls do. A canceled task stops before the step.
func (r *Run) Step(ctx context.Context, name string, undo Undo, do func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return virtplane.Errorf(virtplane.ErrCanceled, "task canceled before %s", name)
	}
	var args []byte
	if undo.Action != "" {
		if _, ok := r.e.undos[undo.Action]; !ok {
			return virtplane.Errorf(virtplane.ErrNotImplemented, "undo action %q is not registered", undo.Action)
		}
		var err error
		if args, err = json.Marshal(undo.Args); err != nil {
			return fmt.Errorf("step %s: undo arguments: %w", name, err)
		}
	}
	r.task.Message = name
	err := r.e.st.Update(ctx, func(tx store.Tx) error {
		if undo.Action != "" {
			if _, err := tx.PushUndo(ctx, r.task.ID, undo.Action, args); err != nil {
				return err
			}
		}
		if err := tx.AppendTaskLog(ctx, r.task.ID, "step: "+name); err != nil {
			return err
		}
		return tx.UpdateTask(ctx, &r.task)
	})
	if err != nil {
		return err
	}
	r.e.changed(r.task)
	if err := do(ctx); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Progress records how far the task is (0..100) and what it does now. It
// is published at once and stored with the task's next step or its end,
// which saves a write per call; a crash loses at most the latest figure.
func (r *Run) Progress(ctx context.Context, percent int, message string) error {
	r.task.Progress = min(max(percent, 0), 100)
	if message != "" {
		r.task.Message = message
	}
	r.e.changed(r.task)
	return nil
}

// Log appends a line to the task's log.
func (r *Run) Log(ctx context.Context, line string) error {
	return r.e.st.Update(ctx, func(tx store.Tx) error { return tx.AppendTaskLog(ctx, r.task.ID, line) })
}

// SetResult records what the task produced; it is stored when the task succeeds.
func (r *Run) SetResult(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("task result: %w", err)
	}
	r.result = b
	return nil
}

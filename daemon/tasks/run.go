package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// Run is a task while its handler runs.
type Run struct {
	e      *Engine
	task   store.Task
	result []byte

	// pending are log lines not stored yet: they go with the next durable
	// write (a step's undo, Log, the task's end), which saves a write per
	// step that changes nothing a crash could leave behind.
	pending []store.LogLine
	// volatile are the in-memory undos, each placed after the stored undos
	// that were recorded before it.
	volatile []volatileUndo
	stored   int // undos recorded durably by this run
}

type volatileUndo struct {
	after int
	fn    func(ctx context.Context) error
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
	// volatile, when set, undoes in-memory state instead (VolatileUndo).
	volatile func(ctx context.Context) error
}

// UndoAction returns an Undo; NoUndo is a step that changes nothing outside.
func UndoAction(action string, args any) Undo { return Undo{Action: action, Args: args} }

// VolatileUndo returns the undo of a step that changes only this process's
// memory (a scheduler reservation): a crash discards the change anyway, so
// the undo is kept with the run, never stored, and runs in its place in the
// rollback order.
func VolatileUndo(fn func(ctx context.Context) error) Undo { return Undo{volatile: fn} }

// NoUndo marks a step that needs no undo.
var NoUndo = Undo{}

// Step runs one step of the task: it records the step's undo durably (with
// the log lines so far), then calls do. A canceled task stops before the
// step. The step's name becomes the task's message, published at once
// (Engine.Live) and stored with the task's end.
func (r *Run) Step(ctx context.Context, name string, undo Undo, do func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return virtplane.Errorf(virtplane.ErrCanceled, "task canceled before %s", name)
	}
	r.task.Message = name
	r.pending = append(r.pending, store.LogLine{At: time.Now(), Line: "step: " + name})
	if undo.volatile != nil {
		r.volatile = append(r.volatile, volatileUndo{after: r.stored, fn: undo.volatile})
	}
	if undo.Action != "" {
		if err := r.Journal(ctx, undo); err != nil {
			return fmt.Errorf("step %s: %w", name, err)
		}
	}
	r.e.changed(r.task)
	if err := do(ctx); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Journal records the undos of several steps ahead, in one durable write,
// before the steps run (with NoUndo). Each undo must be idempotent and do
// nothing for a step that never acted: a failure or a crash before the
// steps ran undoes them all the same.
func (r *Run) Journal(ctx context.Context, undos ...Undo) error {
	entries := make([]store.Undo, len(undos))
	for i, u := range undos {
		if u.Action == "" {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "journal entry %d has no undo action", i)
		}
		if _, ok := r.e.undos[u.Action]; !ok {
			return virtplane.Errorf(virtplane.ErrNotImplemented, "undo action %q is not registered", u.Action)
		}
		b, err := json.Marshal(u.Args)
		if err != nil {
			return fmt.Errorf("undo %s arguments: %w", u.Action, err)
		}
		entries[i] = store.Undo{Action: u.Action, Args: b}
	}
	err := r.e.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.PushUndo(ctx, r.task.ID, entries...); err != nil {
			return err
		}
		return r.flushLog(ctx, tx)
	})
	if err != nil {
		return err
	}
	r.stored += len(undos)
	r.pending = r.pending[:0]
	return nil
}

// flushLog writes the pending log lines in tx; the caller clears them once
// tx committed.
func (r *Run) flushLog(ctx context.Context, tx store.Tx) error {
	return tx.AppendTaskLog(ctx, r.task.ID, r.pending...)
}

// Progress records how far the task is (0..100) and what it does now. It
// is published at once (events, Engine.Live) and stored with the task's
// end, which saves a write per call; a crash loses only these figures, the
// log and the undo journal are durable.
func (r *Run) Progress(ctx context.Context, percent int, message string) error {
	r.task.Progress = min(max(percent, 0), 100)
	if message != "" {
		r.task.Message = message
	}
	r.e.changed(r.task)
	return nil
}

// Log appends a line to the task's log, durably at once (with the lines
// of the steps before it).
func (r *Run) Log(ctx context.Context, line string) error {
	r.pending = append(r.pending, store.LogLine{At: time.Now(), Line: line})
	err := r.e.st.Update(ctx, func(tx store.Tx) error { return r.flushLog(ctx, tx) })
	if err == nil {
		r.pending = r.pending[:0]
	}
	return err
}

// LogLines appends several lines to the task's log in one durable write
// (with the lines of the steps before them): for output that streams.
func (r *Run) LogLines(ctx context.Context, lines ...string) error {
	now := time.Now()
	for _, l := range lines {
		r.pending = append(r.pending, store.LogLine{At: now, Line: l})
	}
	err := r.e.st.Update(ctx, func(tx store.Tx) error { return r.flushLog(ctx, tx) })
	if err == nil {
		r.pending = r.pending[:0]
	}
	return err
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

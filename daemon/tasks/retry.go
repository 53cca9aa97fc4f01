package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// DefaultMaxAttempts is how many runs a Retry task gets when Config leaves
// MaxAttempts at zero: enough to ride out a daemon restarted in a crash
// loop a few times, bounded so that a task that itself brings its daemon
// down (a panic outside the handler, an out-of-memory kill) stops.
const DefaultMaxAttempts = 10

// maxAttempts is what a task of handler h is submitted with.
func (e *Engine) maxAttempts(h Handler) int {
	if h.Retry {
		return e.cfg.MaxAttempts
	}
	return 1
}

// errInterrupted is why an interrupted task that gets no further attempt
// fails: ErrUnavailable, the class of a condition a later call may not hit.
func errInterrupted(t store.Task) error {
	if t.MaxAttempts > 1 {
		return virtplane.Errorf(virtplane.ErrUnavailable, "interrupted: the daemon running the task stopped during attempt %d of %d, the last", t.Attempt, t.MaxAttempts)
	}
	return virtplane.Errorf(virtplane.ErrUnavailable, "interrupted: the daemon running the task stopped")
}

// interrupted ends a task that recovery took from a stopped daemon. A task
// that was rolling back its own failure finishes as that failure. A Retry
// task with attempts left is rolled back to a clean state and queued again
// under the same ID (its idempotency key keeps naming it), with its Finish
// not called: to its caller and its target it is still under way. Anything
// else fails as interrupted.
func (e *Engine) interrupted(ctx context.Context, t store.Task, failed error) {
	if failed != nil {
		e.finish(ctx, t, nil, failed)
		return
	}
	h := e.handlers[t.Kind]
	if t.CancelRequested {
		e.finish(ctx, t, nil, virtplane.Errorf(virtplane.ErrCanceled, "canceled: the daemon running the task stopped"))
		return
	}
	if !h.Retry || t.Attempt >= t.MaxAttempts {
		e.finish(ctx, t, nil, errInterrupted(t))
		return
	}
	if err := e.undo(ctx, &t, nil); err != nil {
		// Not clean: another attempt could meet what is left. The undo
		// journal keeps the steps still to undo.
		e.record(ctx, t, nil, errors.Join(errInterrupted(t), fmt.Errorf("rollback incomplete: %w", err)))
		return
	}
	e.requeue(ctx, t)
}

// requeue stores t as queued for its next attempt and releases its locks;
// the dispatcher, which takes tasks oldest first, runs it before any task
// on its resources that came after it.
func (e *Engine) requeue(ctx context.Context, t store.Task) {
	next := t
	next.State, next.Attempt, next.Progress = store.TaskQueued, t.Attempt+1, 0
	next.Message = fmt.Sprintf("queued again for attempt %d of %d after an interruption", next.Attempt, next.MaxAttempts)
	next.Error, next.ErrorClass, next.LeaseOwner = "", "", ""
	next.LeaseUntil, next.Started = time.Time{}, time.Time{}
	line := store.LogLine{At: time.Now(), Line: fmt.Sprintf("attempt %d of %d interrupted (the daemon running it stopped) and rolled back; attempt %d queued", t.Attempt, t.MaxAttempts, next.Attempt)}
	for attempt := 0; ; attempt++ {
		err := e.st.Update(ctx, func(tx store.Tx) error {
			if err := tx.AppendTaskLog(ctx, t.ID, line); err != nil {
				return err
			}
			if err := tx.UpdateTask(ctx, &next); err != nil {
				return err
			}
			return tx.Unlock(ctx, t.ID)
		})
		if err == nil {
			e.log.Info("interrupted task queued again", "task", t.ID, "kind", t.Kind, "attempt", next.Attempt)
			e.changed(next)
			e.Wake()
			return
		}
		e.log.Warn("queuing an interrupted task again", "task", t.ID, "err", err)
		if attempt >= 20 || ctx.Err() != nil {
			return // the lease runs out and recovery takes it again
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
}

// storedFailure is the failure a task was rolling back when its daemon
// stopped (finish stores it with the rollback's start), or nil.
func storedFailure(t store.Task) error {
	if t.State != store.TaskUndoing || t.Error == "" {
		return nil
	}
	return &failure{msg: t.Error, class: classNamed(t.ErrorClass)}
}

// failure is an error read back from a task's record.
type failure struct {
	msg   string
	class error
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.class }

// classNamed returns the virtplane error class whose text is name, or nil.
func classNamed(name string) error {
	for _, c := range []error{virtplane.ErrNotFound, virtplane.ErrAlreadyExists, virtplane.ErrConflict,
		virtplane.ErrInvalidArgument, virtplane.ErrUnavailable, virtplane.ErrResourceExhausted,
		virtplane.ErrNotImplemented, virtplane.ErrPermissionDenied, virtplane.ErrUnauthenticated,
		virtplane.ErrCanceled, virtplane.ErrTimeout} {
		if c.Error() == name {
			return c
		}
	}
	return nil
}

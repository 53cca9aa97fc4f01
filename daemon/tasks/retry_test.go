package tasks_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
)

// finishes records the states a Finish hook saw.
type finishes struct {
	mu     sync.Mutex
	states []store.TaskState
}

func (f *finishes) hook(_ context.Context, _ store.Tx, t *store.Task) error {
	f.mu.Lock()
	f.states = append(f.states, t.State)
	f.mu.Unlock()
	return nil
}

func (f *finishes) get() []store.TaskState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.TaskState(nil), f.states...)
}

func retryEngine(t *testing.T, st store.Store, instance string, undos *undoLog, maxAttempts int) *tasks.Engine {
	t.Helper()
	e2, err := tasks.New(tasks.Config{Store: st, Instance: instance, Poll: 20 * time.Millisecond, Lease: 300 * time.Millisecond, MaxAttempts: maxAttempts})
	require.NoError(t, err)
	e2.OnUndo("record", func(ctx context.Context, args json.RawMessage) error {
		undos.add(strings.Trim(string(args), `"`))
		return nil
	})
	return e2
}

// twoSteps is a Retry handler whose second step blocks until its context
// ends when block is set (a daemon stopping inside it).
func twoSteps(block bool, entered chan<- struct{}, fin *finishes) tasks.Handler {
	return tasks.Handler{Retry: true, Finish: fin.hook, Run: func(ctx context.Context, r *tasks.Run) error {
		if err := r.Step(ctx, "one", tasks.UndoAction("record", "one"), func(context.Context) error { return nil }); err != nil {
			return err
		}
		return r.Step(ctx, "two", tasks.UndoAction("record", "two"), func(ctx context.Context) error {
			if block {
				entered <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
	}}
}

func logText(t *testing.T, st store.Store, id string) string {
	t.Helper()
	lines, err := st.TaskLog(t.Context(), id)
	require.NoError(t, err)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Line + "\n")
	}
	return b.String()
}

// TestInterruptedTaskRunsAgain: a Retry task that a stopped daemon left
// inside a step is rolled back and run again by the restarted daemon under
// the same ID and idempotency key; its Finish sees only the final end, so
// its target never looks failed between the attempts; the log says what
// happened.
func TestInterruptedTaskRunsAgain(t *testing.T) {
	for name, open := range map[string]func(testing.TB) store.Store{
		"sqlite":   func(t testing.TB) store.Store { return dbtest.SQLite(t) },
		"postgres": func(t testing.TB) store.Store { return dbtest.Postgres(t) },
	} {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			undos, fin := &undoLog{}, &finishes{}
			entered := make(chan struct{}, 1)
			e1 := retryEngine(t, st, "d1", undos, 3)
			e1.Handle("x", twoSteps(true, entered, fin))
			stop := start(t, e1)
			a, _, err := e1.Submit(t.Context(), tasks.Submission{Kind: "x", Resources: []string{"vm/1"}, IdempotencyKey: "k"})
			require.NoError(t, err)
			assert.Equal(t, 1, a.Attempt)
			assert.Equal(t, 3, a.MaxAttempts)
			<-entered
			stop()

			e2 := retryEngine(t, st, "d1", undos, 3)
			e2.Handle("x", twoSteps(false, nil, fin))
			start(t, e2)
			got := wait(t, e2, a.ID)
			assert.Equal(t, store.TaskSucceeded, got.State)
			assert.Equal(t, 2, got.Attempt)
			assert.Empty(t, got.Error)
			assert.Equal(t, []string{"two", "one"}, undos.get(), "the first attempt was rolled back before the second")
			assert.Equal(t, []store.TaskState{store.TaskSucceeded}, fin.get(), "Finish ran once, at the end")
			again, created, err := e2.Submit(t.Context(), tasks.Submission{Kind: "x", Resources: []string{"vm/1"}, IdempotencyKey: "k"})
			require.NoError(t, err)
			assert.False(t, created)
			assert.Equal(t, a.ID, again.ID, "the key still names the task")
			log := logText(t, st, a.ID)
			assert.Contains(t, log, "attempt 1 of 3 interrupted (the daemon running it stopped) and rolled back; attempt 2 queued")
			assert.Contains(t, log, "attempt 2 of 3\n")
		})
	}
}

// TestInterruptedTaskRetriedByAnotherDaemon: the task of a daemon that
// stopped renewing its lease runs again on the daemon that takes it over.
func TestInterruptedTaskRetriedByAnotherDaemon(t *testing.T) {
	st := dbtest.SQLite(t)
	undos, fin := &undoLog{}, &finishes{}
	entered := make(chan struct{}, 1)
	e1 := retryEngine(t, st, "d1", undos, 3)
	e1.Handle("x", twoSteps(true, entered, fin))
	stop := start(t, e1)
	a, _, err := e1.Submit(t.Context(), tasks.Submission{Kind: "x", Resources: []string{"vm/1"}})
	require.NoError(t, err)
	<-entered
	stop()
	e2 := retryEngine(t, st, "d2", undos, 3)
	e2.Handle("x", twoSteps(false, nil, fin))
	start(t, e2)
	got := wait(t, e2, a.ID)
	assert.Equal(t, store.TaskSucceeded, got.State)
	assert.Equal(t, "d2", got.LeaseOwner)
	assert.Equal(t, 2, got.Attempt)
	assert.Equal(t, []string{"two", "one"}, undos.get())
}

// TestRetriesAreBounded: interrupted on every attempt, a task fails for
// good after MaxAttempts runs, as unavailable, and its log and error say
// that it was the last.
func TestRetriesAreBounded(t *testing.T) {
	st := dbtest.SQLite(t)
	undos, fin := &undoLog{}, &finishes{}
	entered := make(chan struct{}, 1)
	var id string
	for run := range 2 {
		e := retryEngine(t, st, "d1", undos, 2)
		e.Handle("x", twoSteps(true, entered, fin))
		stop := start(t, e)
		if run == 0 {
			a, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "x", Resources: []string{"vm/1"}})
			require.NoError(t, err)
			id = a.ID
		}
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("attempt %d did not start", run+1)
		}
		stop()
	}
	e := retryEngine(t, st, "d1", undos, 2)
	e.Handle("x", twoSteps(false, nil, fin))
	start(t, e)
	got := wait(t, e, id)
	assert.Equal(t, store.TaskFailed, got.State)
	assert.Equal(t, 2, got.Attempt)
	assert.Equal(t, virtplane.ErrUnavailable.Error(), got.ErrorClass)
	assert.Contains(t, got.Error, "attempt 2 of 2, the last")
	assert.Equal(t, []store.TaskState{store.TaskFailed}, fin.get())
	assert.Equal(t, []string{"two", "one", "two", "one"}, undos.get())
	assert.Contains(t, logText(t, st, id), "attempt 1 of 2 interrupted")
}

// TestInterruptedRollbackOfAFailureIsNotRetried: a task that was rolling
// back its own failure (no room, say) when its daemon stopped ends as that
// failure, with its class, and is not run again.
func TestInterruptedRollbackOfAFailureIsNotRetried(t *testing.T) {
	st := dbtest.SQLite(t)
	ctx := t.Context()
	undos, fin := &undoLog{}, &finishes{}
	tk := store.Task{ID: store.NewID(), Kind: "x", Resources: []string{"vm/1"}, Attempt: 1, MaxAttempts: 3}
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateTask(ctx, &tk); err != nil {
			return err
		}
		if _, err := tx.PushUndo(ctx, tk.ID, store.Undo{Action: "record", Args: []byte(`"one"`)}); err != nil {
			return err
		}
		if _, err := tx.Lock(ctx, tk.ID, tk.Resources); err != nil {
			return err
		}
		tk.State, tk.LeaseOwner, tk.LeaseUntil = store.TaskUndoing, "dead", time.Now().Add(-time.Second)
		tk.Error = "reserve capacity: no node fits: " + virtplane.ErrResourceExhausted.Error()
		tk.ErrorClass = virtplane.ErrResourceExhausted.Error()
		return tx.UpdateTask(ctx, &tk)
	}))
	e := retryEngine(t, st, "d2", undos, 3)
	e.Handle("x", twoSteps(false, nil, fin))
	start(t, e)
	got := wait(t, e, tk.ID)
	assert.Equal(t, store.TaskFailed, got.State)
	assert.Equal(t, 1, got.Attempt, "not run again")
	assert.Equal(t, virtplane.ErrResourceExhausted.Error(), got.ErrorClass)
	assert.Contains(t, got.Error, "no node fits")
	assert.Equal(t, []string{"one"}, undos.get())
}

// TestFailureIsNotRetried: a Retry task that fails by itself fails at once,
// with its error's class: only interruptions run a task again.
func TestFailureIsNotRetried(t *testing.T) {
	st := dbtest.SQLite(t)
	undos := &undoLog{}
	e := retryEngine(t, st, "d1", undos, 3)
	runs := 0
	e.Handle("x", tasks.Handler{Retry: true, Run: func(ctx context.Context, r *tasks.Run) error {
		runs++
		return r.Step(ctx, "place", tasks.UndoAction("record", "place"), func(context.Context) error {
			return virtplane.Errorf(virtplane.ErrResourceExhausted, "no node fits")
		})
	}})
	start(t, e)
	a, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "x", Resources: []string{"vm/1"}})
	require.NoError(t, err)
	got := wait(t, e, a.ID)
	assert.Equal(t, store.TaskFailed, got.State)
	assert.Equal(t, 1, runs)
	assert.Equal(t, virtplane.ErrResourceExhausted.Error(), got.ErrorClass)
}

// TestInterruptedCancelIsNotRetried: a task whose cancel was asked before
// its daemon stopped ends canceled instead of running again.
func TestInterruptedCancelIsNotRetried(t *testing.T) {
	st := dbtest.SQLite(t)
	ctx := t.Context()
	undos, fin := &undoLog{}, &finishes{}
	// The task as a daemon that died inside its step, after a cancel asked
	// through another daemon, leaves it.
	tk := store.Task{ID: store.NewID(), Kind: "x", Resources: []string{"vm/1"}, Attempt: 1, MaxAttempts: 3}
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateTask(ctx, &tk); err != nil {
			return err
		}
		if _, err := tx.PushUndo(ctx, tk.ID, store.Undo{Action: "record", Args: []byte(`"one"`)}); err != nil {
			return err
		}
		if _, err := tx.Lock(ctx, tk.ID, tk.Resources); err != nil {
			return err
		}
		tk.State, tk.LeaseOwner, tk.LeaseUntil, tk.CancelRequested = store.TaskRunning, "dead", time.Now().Add(-time.Second), true
		return tx.UpdateTask(ctx, &tk)
	}))
	e := retryEngine(t, st, "d2", undos, 3)
	e.Handle("x", twoSteps(false, nil, fin))
	start(t, e)
	got := wait(t, e, tk.ID)
	assert.Equal(t, store.TaskCanceled, got.State)
	assert.Equal(t, 1, got.Attempt, "not run again")
	assert.Equal(t, []string{"one"}, undos.get())
	assert.Equal(t, []store.TaskState{store.TaskCanceled}, fin.get())
}

package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
)

// undoLog records the undo actions an engine ran.
type undoLog struct {
	mu  sync.Mutex
	ran []string
}

func (u *undoLog) add(s string) { u.mu.Lock(); u.ran = append(u.ran, s); u.mu.Unlock() }
func (u *undoLog) get() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.ran...)
}

func newEngine(t *testing.T, st store.Store, instance string, undos *undoLog) *tasks.Engine {
	t.Helper()
	e, err := tasks.New(tasks.Config{Store: st, Instance: instance, Poll: 20 * time.Millisecond, Lease: 300 * time.Millisecond})
	require.NoError(t, err)
	e.OnUndo("record", func(ctx context.Context, args json.RawMessage) error {
		var s string
		if err := json.Unmarshal(args, &s); err != nil {
			return err
		}
		undos.add(s)
		return nil
	})
	return e
}

func start(t *testing.T, e *tasks.Engine) context.CancelFunc {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); assert.NoError(t, e.Run(ctx)) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func wait(t *testing.T, e *tasks.Engine, id string) store.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tk, err := e.Wait(ctx, id)
	require.NoError(t, err)
	return tk
}

func TestIndependentTasksRunInParallel(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEngine(t, st, "d1", &undoLog{})
	var barrier sync.WaitGroup
	barrier.Add(2)
	e.Handle("meet", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error {
		barrier.Done()
		ch := make(chan struct{})
		go func() { barrier.Wait(); close(ch) }()
		select {
		case <-ch:
			return nil
		case <-time.After(5 * time.Second):
			return fmt.Errorf("the other task did not run at the same time")
		}
	}})
	start(t, e)
	a, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "meet", Resources: []string{"vm/a"}})
	require.NoError(t, err)
	b, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "meet", Resources: []string{"vm/b"}})
	require.NoError(t, err)
	assert.Equal(t, store.TaskSucceeded, wait(t, e, a.ID).State)
	assert.Equal(t, store.TaskSucceeded, wait(t, e, b.ID).State)
}

func TestConflictingTasksQueueInOrder(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEngine(t, st, "d1", &undoLog{})
	var inside atomic.Int32
	var mu sync.Mutex
	var order []int
	e.Handle("work", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error {
		if inside.Add(1) != 1 {
			return fmt.Errorf("two tasks on one resource at once")
		}
		defer inside.Add(-1)
		var n int
		if err := r.Input(&n); err != nil {
			return err
		}
		mu.Lock()
		order = append(order, n)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return nil
	}})
	var ids []string
	for i := range 8 {
		// Each task locks the shared node and a VM of its own.
		tk, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "work", Input: i, Resources: []string{"node/1", fmt.Sprintf("vm/%d", i)}})
		require.NoError(t, err)
		ids = append(ids, tk.ID)
	}
	start(t, e)
	for _, id := range ids {
		assert.Equal(t, store.TaskSucceeded, wait(t, e, id).State)
	}
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7}, order)
	holder, err := st.LockHolder(t.Context(), "node/1")
	require.NoError(t, err)
	assert.Empty(t, holder, "locks are released")
}

func TestFailureRollsBackInReverse(t *testing.T) {
	st := dbtest.SQLite(t)
	undos := &undoLog{}
	e := newEngine(t, st, "d1", undos)
	var finished []store.TaskState
	e.Handle("create", tasks.Handler{
		Run: func(ctx context.Context, r *tasks.Run) error {
			for _, s := range []string{"a", "b"} {
				if err := r.Step(ctx, "step "+s, tasks.UndoAction("record", s), func(context.Context) error { return nil }); err != nil {
					return err
				}
			}
			return r.Step(ctx, "step c", tasks.UndoAction("record", "c"), func(context.Context) error {
				return virtplane.Errorf(virtplane.ErrResourceExhausted, "pool is full")
			})
		},
		Finish: func(ctx context.Context, tx store.Tx, tk *store.Task) error {
			finished = append(finished, tk.State)
			return nil
		},
	})
	start(t, e)
	tk, created, err := e.Submit(t.Context(), tasks.Submission{Kind: "create", Owner: "u1", Resources: []string{"vm/1"}})
	require.NoError(t, err)
	require.True(t, created)
	got := wait(t, e, tk.ID)
	assert.Equal(t, store.TaskFailed, got.State)
	assert.Equal(t, virtplane.ErrResourceExhausted.Error(), got.ErrorClass)
	assert.Contains(t, got.Error, "step c")
	// c's undo is recorded before c acts, so it runs too: undos are idempotent.
	assert.Equal(t, []string{"c", "b", "a"}, undos.get())
	assert.Equal(t, []store.TaskState{store.TaskFailed}, finished)
	us, err := st.TaskUndos(t.Context(), tk.ID)
	require.NoError(t, err)
	for _, u := range us {
		assert.True(t, u.Done)
	}
	lines, err := st.TaskLog(t.Context(), tk.ID)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(lines), 7, "3 steps, 3 undos, the end")
}

func TestCancel(t *testing.T) {
	st := dbtest.SQLite(t)
	undos := &undoLog{}
	e := newEngine(t, st, "d1", undos)
	entered := make(chan struct{})
	e.Handle("block", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error {
		return r.Step(ctx, "hold", tasks.UndoAction("record", "held"), func(ctx context.Context) error {
			close(entered)
			<-ctx.Done()
			return ctx.Err()
		})
	}})
	start(t, e)
	running, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "block", Resources: []string{"vm/1"}})
	require.NoError(t, err)
	queued, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "block", Resources: []string{"vm/1"}})
	require.NoError(t, err)
	<-entered
	require.NoError(t, e.Cancel(t.Context(), queued.ID))
	assert.Equal(t, store.TaskCanceled, wait(t, e, queued.ID).State)
	require.NoError(t, e.Cancel(t.Context(), running.ID))
	got := wait(t, e, running.ID)
	assert.Equal(t, store.TaskCanceled, got.State)
	assert.Equal(t, []string{"held"}, undos.get())
	assert.ErrorIs(t, e.Cancel(t.Context(), running.ID), virtplane.ErrConflict, "finished")
	assert.ErrorIs(t, e.Cancel(t.Context(), "nope"), virtplane.ErrNotFound)
}

func TestIdempotencyKey(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEngine(t, st, "d1", &undoLog{})
	e.Handle("x", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error { return nil }})
	a, created, err := e.Submit(t.Context(), tasks.Submission{Kind: "x", Owner: "u1", IdempotencyKey: "order-1"})
	require.NoError(t, err)
	assert.True(t, created)
	b, created, err := e.Submit(t.Context(), tasks.Submission{Kind: "x", Owner: "u1", IdempotencyKey: "order-1"})
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, a.ID, b.ID)
	_, _, err = e.Submit(t.Context(), tasks.Submission{Kind: "unknown"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

func TestPanicFailsTheTask(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEngine(t, st, "d1", &undoLog{})
	e.Handle("x", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error { panic("bug") }})
	start(t, e)
	tk, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "x"})
	require.NoError(t, err)
	got := wait(t, e, tk.ID)
	assert.Equal(t, store.TaskFailed, got.State)
	assert.Contains(t, got.Error, "panicked")
}

// TestRestartRollsBackUnfinished stops an engine while a task is inside a
// step (as a crash would leave it) and starts a new engine of the same
// instance: the interrupted task is rolled back, the queued one runs.
func TestRestartRollsBackUnfinished(t *testing.T) {
	for name, open := range map[string]func(testing.TB) store.Store{
		"sqlite":   func(t testing.TB) store.Store { return dbtest.SQLite(t) },
		"postgres": func(t testing.TB) store.Store { return dbtest.Postgres(t) },
	} {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			undos := &undoLog{}
			entered := make(chan struct{}, 1)
			handler := func(block bool) tasks.Handler {
				return tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error {
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
			e1 := newEngine(t, st, "d1", undos)
			e1.Handle("x", handler(true))
			stop := start(t, e1)
			a, _, err := e1.Submit(t.Context(), tasks.Submission{Kind: "x", Resources: []string{"vm/1"}})
			require.NoError(t, err)
			<-entered
			b, _, err := e1.Submit(t.Context(), tasks.Submission{Kind: "x", Resources: []string{"vm/1"}})
			require.NoError(t, err)
			stop()
			mid, err := st.GetTask(t.Context(), a.ID)
			require.NoError(t, err)
			require.Equal(t, store.TaskRunning, mid.State, "the stopped engine leaves the task to recovery")
			assert.Empty(t, undos.get())

			e2 := newEngine(t, st, "d1", undos)
			e2.Handle("x", handler(false))
			start(t, e2)
			got := wait(t, e2, a.ID)
			assert.Equal(t, store.TaskFailed, got.State)
			assert.Equal(t, virtplane.ErrUnavailable.Error(), got.ErrorClass)
			assert.Equal(t, []string{"two", "one"}, undos.get())
			assert.Equal(t, store.TaskSucceeded, wait(t, e2, b.ID).State)
		})
	}
}

// TestLeaseTakeover: a second daemon rolls back the task of a daemon that
// stopped renewing its lease.
func TestLeaseTakeover(t *testing.T) {
	st := dbtest.SQLite(t)
	undos := &undoLog{}
	entered := make(chan struct{})
	e1 := newEngine(t, st, "d1", undos)
	e1.Handle("x", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error {
		return r.Step(ctx, "one", tasks.UndoAction("record", "one"), func(ctx context.Context) error {
			close(entered)
			<-ctx.Done()
			return ctx.Err()
		})
	}})
	stop := start(t, e1)
	a, _, err := e1.Submit(t.Context(), tasks.Submission{Kind: "x", Resources: []string{"vm/1"}})
	require.NoError(t, err)
	<-entered
	stop()
	e2 := newEngine(t, st, "d2", undos)
	e2.Handle("x", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error { return nil }})
	start(t, e2)
	got := wait(t, e2, a.ID)
	assert.Equal(t, store.TaskFailed, got.State)
	assert.Equal(t, "d2", got.LeaseOwner)
	assert.Equal(t, []string{"one"}, undos.get())
}

func TestConfigErrors(t *testing.T) {
	_, err := tasks.New(tasks.Config{Instance: "x"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = tasks.New(tasks.Config{Store: dbtest.SQLite(t)})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

// A journal records several undos in one write, volatile undos run in their
// place in the rollback order, and the log lines of steps without a durable
// undo are stored with the task's end.
func TestJournalAndVolatileUndoOrder(t *testing.T) {
	st := dbtest.SQLite(t)
	undos := &undoLog{}
	e := newEngine(t, st, "d1", undos)
	release := make(chan struct{})
	running := make(chan struct{})
	e.Handle("create", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error {
		if err := r.Step(ctx, "reserve", tasks.VolatileUndo(func(context.Context) error { undos.add("mem1"); return nil }), func(context.Context) error { return nil }); err != nil {
			return err
		}
		if err := r.Journal(ctx, tasks.UndoAction("record", "a"), tasks.UndoAction("record", "b")); err != nil {
			return err
		}
		if err := r.Step(ctx, "remember", tasks.VolatileUndo(func(context.Context) error { undos.add("mem2"); return nil }), func(context.Context) error { return nil }); err != nil {
			return err
		}
		if err := r.Step(ctx, "c", tasks.UndoAction("record", "c"), func(context.Context) error { return nil }); err != nil {
			return err
		}
		if err := r.Step(ctx, "wait", tasks.NoUndo, func(context.Context) error {
			_ = r.Progress(ctx, 70, "waiting at 70%")
			close(running)
			<-release
			return nil
		}); err != nil {
			return err
		}
		return r.Step(ctx, "fail", tasks.NoUndo, func(context.Context) error {
			return virtplane.Errorf(virtplane.ErrUnavailable, "node went away")
		})
	}})
	start(t, e)
	tk, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "create", Owner: "u1", Resources: []string{"vm/1"}})
	require.NoError(t, err)
	<-running
	// The progress of the moment is not stored yet, but Live shows it.
	stored, err := st.GetTask(t.Context(), tk.ID)
	require.NoError(t, err)
	assert.Equal(t, "running", stored.Message)
	live := e.Live(stored)
	assert.Equal(t, 70, live.Progress)
	assert.Equal(t, "waiting at 70%", live.Message)
	close(release)

	got := wait(t, e, tk.ID)
	assert.Equal(t, store.TaskFailed, got.State)
	assert.Equal(t, []string{"c", "mem2", "b", "a", "mem1"}, undos.get())
	us, err := st.TaskUndos(t.Context(), tk.ID)
	require.NoError(t, err)
	require.Len(t, us, 3, "volatile undos are never stored")
	lines, err := st.TaskLog(t.Context(), tk.ID)
	require.NoError(t, err)
	var text []string
	for _, l := range lines {
		text = append(text, l.Line)
	}
	assert.Equal(t, []string{"step: reserve", "step: remember", "step: c", "step: wait", "step: fail",
		"undone: record", "undone: record", "undone: record", "ended: fail: node went away: " + virtplane.ErrUnavailable.Error()}, text)
}

func TestJournalRefusesUnknownActions(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEngine(t, st, "d1", &undoLog{})
	e.Handle("x", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error {
		return r.Journal(ctx, tasks.UndoAction("nope", 1))
	}})
	start(t, e)
	tk, _, err := e.Submit(t.Context(), tasks.Submission{Kind: "x", Owner: "u1"})
	require.NoError(t, err)
	got := wait(t, e, tk.ID)
	assert.Equal(t, store.TaskFailed, got.State)
	assert.Equal(t, virtplane.ErrNotImplemented.Error(), got.ErrorClass)
}

// Of two daemons sharing a store, only the placement leader runs Placing
// tasks, whichever daemon took them in; when the leader stops, the other
// takes the lead once the lease has run out, is told so, and runs them.
func TestPlacingTasksRunOnTheLeader(t *testing.T) {
	st := dbtest.SQLite(t)
	type ran struct{ kind, instance string }
	var mu sync.Mutex
	var runs []ran
	var leads []string
	newLeaderEngine := func(instance string) *tasks.Engine {
		e, err := tasks.New(tasks.Config{Store: st, Instance: instance, Poll: 20 * time.Millisecond, Lease: 300 * time.Millisecond,
			OnLead: func(ctx context.Context, took bool) {
				if took {
					mu.Lock()
					leads = append(leads, instance)
					mu.Unlock()
				}
			}})
		require.NoError(t, err)
		for _, kind := range []string{"place", "plain"} {
			e.Handle(kind, tasks.Handler{Placing: kind == "place", Run: func(ctx context.Context, r *tasks.Run) error {
				mu.Lock()
				runs = append(runs, ran{kind, instance})
				mu.Unlock()
				return nil
			}})
		}
		return e
	}
	d1, d2 := newLeaderEngine("d1"), newLeaderEngine("d2")
	stop1 := start(t, d1)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(leads) == 1 }, 5*time.Second, 10*time.Millisecond)
	start(t, d2)
	var submitted int
	submitAll := func(via *tasks.Engine, kind string, n int) []string {
		var ids []string
		for range n {
			submitted++
			tk, _, err := via.Submit(t.Context(), tasks.Submission{Kind: kind, Owner: "u", Resources: []string{fmt.Sprintf("r/%d", submitted)}})
			require.NoError(t, err)
			ids = append(ids, tk.ID)
		}
		return ids
	}
	for _, id := range append(submitAll(d2, "place", 10), submitAll(d2, "plain", 10)...) {
		require.Equal(t, store.TaskSucceeded, wait(t, d2, id).State)
	}
	mu.Lock()
	for _, r := range runs {
		if r.kind == "place" {
			assert.Equal(t, "d1", r.instance, "a placing task ran off the leader")
		}
	}
	assert.Equal(t, []string{"d1"}, leads)
	runs = nil
	mu.Unlock()

	stop1()
	for _, id := range submitAll(d2, "place", 5) {
		require.Equal(t, store.TaskSucceeded, wait(t, d2, id).State)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, runs, 5)
	for _, r := range runs {
		assert.Equal(t, "d2", r.instance)
	}
	assert.Equal(t, []string{"d1", "d2"}, leads, "d2 took the lead and was told")
}

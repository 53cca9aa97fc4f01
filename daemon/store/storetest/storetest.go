// Package storetest is the conformance suite every store.Store passes: the
// SQLite and PostgreSQL stores run it, and so must any other implementation.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openStore(t) })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// Factory returns an empty store; the suite closes it.
type Factory func(t *testing.T) store.Store

// Run runs the suite against stores made by factory.
func Run(t *testing.T, factory Factory) {
	tests := []struct {
		name string
		f    func(*testing.T, store.Store)
	}{
		{"ObjectCRUD", testObjectCRUD},
		{"ObjectNames", testObjectNames},
		{"ObjectVersions", testObjectVersions},
		{"ObjectList", testObjectList},
		{"UpdateRollsBack", testUpdateRollsBack},
		{"ConcurrentUpdatesOneWins", testConcurrentUpdates},
		{"ReadsDoNotWaitForWrites", testReadsDoNotWait},
		{"Tasks", testTasks},
		{"TaskIdempotencyKey", testTaskIdempotency},
		{"TaskClaimOnce", testTaskClaimOnce},
		{"TaskLogAndUndo", testTaskLogAndUndo},
		{"Locks", testLocks},
		{"ConcurrentLocksOneWins", testConcurrentLocks},
		{"BadInput", testBadInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := factory(t)
			t.Cleanup(func() { _ = st.Close() })
			tc.f(t, st)
		})
	}
}

func create(t *testing.T, st store.Store, o *store.Object) {
	t.Helper()
	require.NoError(t, st.Update(t.Context(), func(tx store.Tx) error { return tx.CreateObject(t.Context(), o) }))
}

func testObjectCRUD(t *testing.T, st store.Store) {
	ctx := t.Context()
	o := &store.Object{Kind: store.KindVM, ID: "vm1", Name: "web", Owner: "u1", Parent: "c1", Data: []byte(`{"cpus":2}`)}
	create(t, st, o)
	assert.EqualValues(t, 1, o.Version)

	got, err := st.GetObject(ctx, store.KindVM, "vm1")
	require.NoError(t, err)
	assert.Equal(t, "web", got.Name)
	assert.Equal(t, "u1", got.Owner)
	assert.Equal(t, "c1", got.Parent)
	assert.JSONEq(t, `{"cpus":2}`, string(got.Data))
	assert.EqualValues(t, 1, got.Version)
	assert.False(t, got.Created.IsZero())

	byName, err := st.GetObjectByName(ctx, store.KindVM, "c1", "web")
	require.NoError(t, err)
	assert.Equal(t, "vm1", byName.ID)

	got.Data = []byte(`{"cpus":4}`)
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.UpdateObject(ctx, &got) }))
	assert.EqualValues(t, 2, got.Version)
	again, err := st.GetObject(ctx, store.KindVM, "vm1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"cpus":4}`, string(again.Data))
	assert.EqualValues(t, 2, again.Version)

	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.DeleteObject(ctx, store.KindVM, "vm1", 2) }))
	_, err = st.GetObject(ctx, store.KindVM, "vm1")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	err = st.Update(ctx, func(tx store.Tx) error { return tx.DeleteObject(ctx, store.KindVM, "vm1", 0) })
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	_, err = st.GetObjectByName(ctx, store.KindVM, "c1", "web")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

func testObjectNames(t *testing.T, st store.Store) {
	ctx := t.Context()
	create(t, st, &store.Object{Kind: store.KindNode, ID: "n1", Name: "a", Parent: "c1"})
	create(t, st, &store.Object{Kind: store.KindNode, ID: "n2", Name: "a", Parent: "c2"}) // other parent
	create(t, st, &store.Object{Kind: store.KindPool, ID: "n3", Name: "a", Parent: "c1"}) // other kind
	err := st.Update(ctx, func(tx store.Tx) error {
		return tx.CreateObject(ctx, &store.Object{Kind: store.KindNode, ID: "n4", Name: "a", Parent: "c1"})
	})
	assert.ErrorIs(t, err, virtplane.ErrAlreadyExists)
	err = st.Update(ctx, func(tx store.Tx) error {
		return tx.CreateObject(ctx, &store.Object{Kind: store.KindNode, ID: "n1", Name: "b", Parent: "c1"})
	})
	assert.ErrorIs(t, err, virtplane.ErrAlreadyExists, "same id")
	// Renaming onto a taken name fails too.
	n2, err := st.GetObject(ctx, store.KindNode, "n2")
	require.NoError(t, err)
	n2.Parent = "c1"
	err = st.Update(ctx, func(tx store.Tx) error { return tx.UpdateObject(ctx, &n2) })
	assert.ErrorIs(t, err, virtplane.ErrAlreadyExists)
	// Read, renamed, updated twice in one transaction: the name sticks.
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, store.KindNode, "n2")
		if err != nil {
			return err
		}
		o.Name, o.Owner = "renamed", "u9"
		if err := tx.UpdateObject(ctx, &o); err != nil {
			return err
		}
		o.Data = []byte(`{"again":true}`)
		return tx.UpdateObject(ctx, &o)
	}))
	got, err := st.GetObjectByName(ctx, store.KindNode, "c2", "renamed")
	require.NoError(t, err)
	assert.Equal(t, "u9", got.Owner)
	assert.JSONEq(t, `{"again":true}`, string(got.Data))
	mine, err := st.ListObjects(ctx, store.KindNode, store.ListOptions{Owner: "u9"})
	require.NoError(t, err)
	assert.Len(t, mine, 1)
}

func testObjectVersions(t *testing.T, st store.Store) {
	ctx := t.Context()
	create(t, st, &store.Object{Kind: store.KindImage, ID: "i1", Name: "debian"})
	a, err := st.GetObject(ctx, store.KindImage, "i1")
	require.NoError(t, err)
	b := a
	a.Data = []byte(`{"x":1}`)
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.UpdateObject(ctx, &a) }))
	b.Data = []byte(`{"x":2}`)
	err = st.Update(ctx, func(tx store.Tx) error { return tx.UpdateObject(ctx, &b) })
	assert.ErrorIs(t, err, virtplane.ErrConflict, "stale version")
	err = st.Update(ctx, func(tx store.Tx) error { return tx.DeleteObject(ctx, store.KindImage, "i1", 1) })
	assert.ErrorIs(t, err, virtplane.ErrConflict, "stale delete")
	missing := store.Object{Kind: store.KindImage, ID: "nope", Name: "x", Version: 1}
	err = st.Update(ctx, func(tx store.Tx) error { return tx.UpdateObject(ctx, &missing) })
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	got, err := st.GetObject(ctx, store.KindImage, "i1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"x":1}`, string(got.Data))
}

func testObjectList(t *testing.T, st store.Store) {
	ctx := t.Context()
	for i := range 25 {
		owner := "u1"
		if i%2 == 1 {
			owner = "u2"
		}
		create(t, st, &store.Object{Kind: store.KindVM, ID: fmt.Sprintf("vm%03d", i), Name: fmt.Sprintf("n%d", i), Owner: owner, Parent: fmt.Sprintf("c%d", i%3)})
	}
	create(t, st, &store.Object{Kind: store.KindNode, ID: "vm999", Name: "node"})

	all, err := st.ListObjects(ctx, store.KindVM, store.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, all, 25)
	for i := 1; i < len(all); i++ {
		assert.Less(t, all[i-1].ID, all[i].ID, "ordered by id")
	}
	mine, err := st.ListObjects(ctx, store.KindVM, store.ListOptions{Owner: "u1"})
	require.NoError(t, err)
	assert.Len(t, mine, 13)
	for _, o := range mine {
		assert.Equal(t, "u1", o.Owner)
	}
	n, err := st.CountObjects(ctx, store.KindVM, store.ListOptions{Owner: "u2", Parent: "c1"})
	require.NoError(t, err)
	// i odd and i%3==1: 1, 7, 13, 19
	assert.Equal(t, 4, n)

	var paged []store.Object
	after := ""
	for {
		page, err := st.ListObjects(ctx, store.KindVM, store.ListOptions{After: after, Limit: 10})
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		assert.LessOrEqual(t, len(page), 10)
		paged = append(paged, page...)
		after = page[len(page)-1].ID
	}
	assert.Equal(t, all, paged)
}

func testUpdateRollsBack(t *testing.T, st store.Store) {
	ctx := t.Context()
	boom := virtplane.Errorf(virtplane.ErrConflict, "boom")
	err := st.Update(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.CreateObject(ctx, &store.Object{Kind: store.KindPool, ID: "p1", Name: "p"}))
		// The transaction sees its own write.
		_, err := tx.GetObject(ctx, store.KindPool, "p1")
		require.NoError(t, err)
		require.NoError(t, tx.CreateTask(ctx, &store.Task{ID: "t1", Kind: "x"}))
		return boom
	})
	assert.ErrorIs(t, err, boom)
	_, err = st.GetObject(ctx, store.KindPool, "p1")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	_, err = st.GetTask(ctx, "t1")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

func testConcurrentUpdates(t *testing.T, st store.Store) {
	ctx := t.Context()
	create(t, st, &store.Object{Kind: store.KindVM, ID: "v", Name: "v"})
	base, err := st.GetObject(ctx, store.KindVM, "v")
	require.NoError(t, err)
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			o := base
			o.Data = fmt.Appendf(nil, `{"i":%d}`, i)
			err := st.Update(ctx, func(tx store.Tx) error { return tx.UpdateObject(ctx, &o) })
			switch {
			case err == nil:
				wins.Add(1)
			case virtplane.Class(err) == virtplane.ErrConflict:
				conflicts.Add(1)
			default:
				t.Errorf("update: %v", err)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 1, wins.Load())
	assert.EqualValues(t, 7, conflicts.Load())
}

func testReadsDoNotWait(t *testing.T, st store.Store) {
	ctx := t.Context()
	create(t, st, &store.Object{Kind: store.KindVM, ID: "r", Name: "r"})
	inTx := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- st.Update(ctx, func(tx store.Tx) error {
			o, err := tx.GetObject(ctx, store.KindVM, "r")
			if err != nil {
				return err
			}
			o.Data = []byte(`{"new":true}`)
			if err := tx.UpdateObject(ctx, &o); err != nil {
				return err
			}
			close(inTx)
			<-release
			return nil
		})
	}()
	<-inTx
	readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := st.GetObject(readCtx, store.KindVM, "r")
	require.NoError(t, err, "a read must not wait for the open write transaction")
	assert.EqualValues(t, 1, got.Version, "the read sees the last committed state")
	_, err = st.ListTasks(readCtx, store.TaskFilter{})
	require.NoError(t, err)
	close(release)
	require.NoError(t, <-done)
	got, err = st.GetObject(ctx, store.KindVM, "r")
	require.NoError(t, err)
	assert.EqualValues(t, 2, got.Version)
}

func testTasks(t *testing.T, st store.Store) {
	ctx := t.Context()
	tk := &store.Task{ID: "t01", Kind: "vm.create", Owner: "u1", Target: "vm/1", Resources: []string{"vm/1", "node/2"}, Input: []byte(`{"a":1}`), MaxAttempts: 3}
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.CreateTask(ctx, tk) }))
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
		return tx.CreateTask(ctx, &store.Task{ID: "t02", Kind: "vm.delete", Owner: "u2", Target: "vm/2"})
	}))
	got, err := st.GetTask(ctx, "t01")
	require.NoError(t, err)
	assert.Equal(t, store.TaskQueued, got.State)
	assert.Equal(t, []string{"vm/1", "node/2"}, got.Resources)
	assert.JSONEq(t, `{"a":1}`, string(got.Input))
	assert.False(t, got.Created.IsZero())
	assert.Equal(t, 1, got.Attempt, "a new task is on its first attempt")
	assert.Equal(t, 3, got.MaxAttempts)

	got.State = store.TaskSucceeded
	got.Attempt = 2
	got.Progress = 100
	got.Message = "done"
	got.Result = []byte(`{"ok":true}`)
	got.Finished = time.Now()
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.UpdateTask(ctx, &got) }))
	again, err := st.GetTask(ctx, "t01")
	require.NoError(t, err)
	assert.Equal(t, store.TaskSucceeded, again.State)
	assert.True(t, again.State.Terminal())
	assert.Equal(t, 100, again.Progress)
	assert.Equal(t, 2, again.Attempt)
	assert.Equal(t, 3, again.MaxAttempts)
	assert.JSONEq(t, `{"ok":true}`, string(again.Result))
	assert.WithinDuration(t, got.Finished, again.Finished, time.Millisecond)

	queued, err := st.ListTasks(ctx, store.TaskFilter{States: []store.TaskState{store.TaskQueued}})
	require.NoError(t, err)
	require.Len(t, queued, 1)
	assert.Equal(t, "t02", queued[0].ID)
	byOwner, err := st.ListTasks(ctx, store.TaskFilter{Owner: "u1"})
	require.NoError(t, err)
	require.Len(t, byOwner, 1)
	byTarget, err := st.ListTasks(ctx, store.TaskFilter{Target: "vm/2"})
	require.NoError(t, err)
	require.Len(t, byTarget, 1)
	page, err := st.ListTasks(ctx, store.TaskFilter{After: "t01", Limit: 5})
	require.NoError(t, err)
	require.Len(t, page, 1)
	_, err = st.GetTask(ctx, "nope")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	missing := store.Task{ID: "nope", Kind: "x"}
	err = st.Update(ctx, func(tx store.Tx) error { return tx.UpdateTask(ctx, &missing) })
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

func testTaskIdempotency(t *testing.T, st store.Store) {
	ctx := t.Context()
	mk := func(id, owner, key string) error {
		return st.Update(ctx, func(tx store.Tx) error {
			return tx.CreateTask(ctx, &store.Task{ID: id, Kind: "vm.create", Owner: owner, IdempotencyKey: key})
		})
	}
	require.NoError(t, mk("a", "u1", "k1"))
	assert.ErrorIs(t, mk("b", "u1", "k1"), virtplane.ErrAlreadyExists)
	assert.ErrorIs(t, mk("b", "u1", "k1"), store.ErrIdempotencyKeyTaken)
	assert.ErrorIs(t, mk("a", "u1", "k9"), virtplane.ErrAlreadyExists, "same id")
	assert.NotErrorIs(t, mk("a", "u1", "k9"), store.ErrIdempotencyKeyTaken)
	// The transaction stays usable after a taken key.
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
		err := tx.CreateTask(ctx, &store.Task{ID: "b", Kind: "vm.create", Owner: "u1", IdempotencyKey: "k1"})
		if !errors.Is(err, store.ErrIdempotencyKeyTaken) {
			return fmt.Errorf("want a taken key, got %v", err)
		}
		prev, err := tx.TaskByIdempotencyKey(ctx, "u1", "k1")
		if err != nil {
			return err
		}
		assert.Equal(t, "a", prev.ID)
		return tx.CreateTask(ctx, &store.Task{ID: "b2", Kind: "vm.create", Owner: "u1", IdempotencyKey: "k2"})
	}))
	require.NoError(t, mk("c", "u2", "k1"), "keys are per owner")
	require.NoError(t, mk("d", "u1", ""), "no key")
	require.NoError(t, mk("e", "u1", ""), "no key twice")
	got, err := st.TaskByIdempotencyKey(ctx, "u1", "k1")
	require.NoError(t, err)
	assert.Equal(t, "a", got.ID)
	_, err = st.TaskByIdempotencyKey(ctx, "u1", "k3")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

func testTaskClaimOnce(t *testing.T, st store.Store) {
	ctx := t.Context()
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.CreateTask(ctx, &store.Task{ID: "t", Kind: "x"}) }))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			err := st.Update(ctx, func(tx store.Tx) error {
				ok, err := tx.ClaimTask(ctx, "t", fmt.Sprintf("daemon%d", i), time.Now().Add(time.Minute))
				if ok {
					wins.Add(1)
				}
				return err
			})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.EqualValues(t, 1, wins.Load())
	got, err := st.GetTask(ctx, "t")
	require.NoError(t, err)
	assert.Equal(t, store.TaskRunning, got.State)
	assert.NotEmpty(t, got.LeaseOwner)
	assert.Equal(t, "running", got.Message)
	assert.False(t, got.Started.IsZero())

	until := time.Now().Add(time.Hour)
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.RenewLeases(ctx, got.LeaseOwner, until) }))
	renewed, err := st.GetTask(ctx, "t")
	require.NoError(t, err)
	assert.WithinDuration(t, until, renewed.LeaseUntil, time.Millisecond)
}

func testTaskLogAndUndo(t *testing.T, st store.Store) {
	ctx := t.Context()
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateTask(ctx, &store.Task{ID: "t", Kind: "x"}); err != nil {
			return err
		}
		for _, l := range []string{"one", "two", "three"} {
			if err := tx.AppendTaskLog(ctx, "t", store.LogLine{At: time.Now(), Line: l}); err != nil {
				return err
			}
		}
		return nil
	}))
	lines, err := st.TaskLog(ctx, "t")
	require.NoError(t, err)
	require.Len(t, lines, 3)
	assert.Equal(t, "one", lines[0].Line)
	assert.Equal(t, "three", lines[2].Line)
	assert.Equal(t, 3, lines[2].Seq)

	// Several lines in one call keep their order and times.
	at := time.Now().Add(-time.Minute)
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
		if err := tx.AppendTaskLog(ctx, "t"); err != nil { // nothing to add
			return err
		}
		return tx.AppendTaskLog(ctx, "t", store.LogLine{At: at, Line: "four"}, store.LogLine{At: at.Add(time.Second), Line: "five"})
	}))
	lines, err = st.TaskLog(ctx, "t")
	require.NoError(t, err)
	require.Len(t, lines, 5)
	assert.Equal(t, []int{4, 5}, []int{lines[3].Seq, lines[4].Seq})
	assert.Equal(t, "five", lines[4].Line)
	assert.WithinDuration(t, at, lines[3].At, time.Millisecond)

	var seqs []int
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
		for _, a := range []string{"ipam.release", "storage.delete"} {
			s, err := tx.PushUndo(ctx, "t", store.Undo{Action: a, Args: []byte(`{"id":"x"}`)})
			if err != nil {
				return err
			}
			seqs = append(seqs, s)
		}
		return nil
	}))
	assert.Equal(t, []int{1, 2}, seqs)
	// Several in one call keep their order; none is a mistake.
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
		last, err := tx.PushUndo(ctx, "t", store.Undo{Action: "x.one"}, store.Undo{Action: "x.two", Args: []byte(`[1]`)})
		assert.Equal(t, 4, last)
		return err
	}))
	err = st.Update(ctx, func(tx store.Tx) error { _, err := tx.PushUndo(ctx, "t"); return err })
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	err = st.Update(ctx, func(tx store.Tx) error { _, err := tx.PushUndo(ctx, "t", store.Undo{}); return err })
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.MarkUndoDone(ctx, "t", 2) }))
	undos, err := st.TaskUndos(ctx, "t")
	require.NoError(t, err)
	require.Len(t, undos, 4)
	assert.Equal(t, "x.two", undos[3].Action)
	assert.JSONEq(t, `[1]`, string(undos[3].Args))
	assert.JSONEq(t, `null`, string(undos[2].Args))
	assert.Equal(t, "ipam.release", undos[0].Action)
	assert.False(t, undos[0].Done)
	assert.True(t, undos[1].Done)
	assert.JSONEq(t, `{"id":"x"}`, string(undos[1].Args))
	err = st.Update(ctx, func(tx store.Tx) error { return tx.MarkUndoDone(ctx, "t", 9) })
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

func lock(t *testing.T, st store.Store, id string, res ...string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, st.Update(t.Context(), func(tx store.Tx) error {
		var err error
		ok, err = tx.Lock(t.Context(), id, res)
		return err
	}))
	return ok
}

func testLocks(t *testing.T, st store.Store) {
	ctx := t.Context()
	assert.True(t, lock(t, st, "t1", "vm/1", "node/1"))
	assert.False(t, lock(t, st, "t2", "vm/2", "node/1"), "node/1 is held")
	holder, err := st.LockHolder(ctx, "vm/2")
	require.NoError(t, err)
	assert.Empty(t, holder, "a refused lock takes nothing")
	assert.True(t, lock(t, st, "t3", "vm/2", "node/2"), "disjoint")
	holder, err = st.LockHolder(ctx, "node/1")
	require.NoError(t, err)
	assert.Equal(t, "t1", holder)
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.Unlock(ctx, "t1") }))
	assert.True(t, lock(t, st, "t2", "vm/9", "node/1"))
	assert.True(t, lock(t, st, "t4"), "no resources")
	assert.True(t, lock(t, st, "t3", "vm/2", "vm/3"), "a task may take again what it holds")
	assert.True(t, lock(t, st, "t5", "vm/5", "vm/5"), "a resource named twice")
	holder, err = st.LockHolder(ctx, "vm/3")
	require.NoError(t, err)
	assert.Equal(t, "t3", holder)
}

func testConcurrentLocks(t *testing.T, st store.Store) {
	ctx := t.Context()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			err := st.Update(ctx, func(tx store.Tx) error {
				ok, err := tx.Lock(ctx, fmt.Sprintf("t%d", i), []string{"pool/1", fmt.Sprintf("vm/%d", i)})
				if ok {
					wins.Add(1)
				}
				return err
			})
			// A racing database may refuse with a unique violation.
			if err != nil {
				assert.ErrorIs(t, err, virtplane.ErrAlreadyExists)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 1, wins.Load())
}

func testBadInput(t *testing.T, st store.Store) {
	ctx := t.Context()
	for _, o := range []store.Object{
		{Kind: "", ID: "x", Name: "x"},
		{Kind: store.KindVM, ID: "", Name: "x"},
		{Kind: store.KindVM, ID: "x", Name: ""},
	} {
		err := st.Update(ctx, func(tx store.Tx) error { return tx.CreateObject(ctx, &o) })
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "%+v", o)
	}
	err := st.Update(ctx, func(tx store.Tx) error { return tx.CreateTask(ctx, &store.Task{ID: "", Kind: "x"}) })
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

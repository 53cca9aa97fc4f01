package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/store"
)

// Watch turns the daemon's events into notifications until ctx ends: a
// task that failed (task.failed), a node whose state changed (node.state),
// and events of type "ha" (ha.ACTION). Script results are recorded by the
// script runs themselves, in the transaction that ends the run.
//
// The event bus lives in memory, so Watch first looks in the store for
// the tasks that failed since the previous start of a daemon on it
// (recorded under the key of the scan) and records those: a failure whose
// event a crash swallowed is still notified, once. Node and HA events a
// crash swallowed are not.
//
// sub is a subscription to the daemon's bus with WatchFilter, made by the
// caller as the daemon starts, so that no event published before Watch
// runs is missed; Watch closes it.
func (s *Service) Watch(ctx context.Context, sub *events.Subscription) error {
	defer sub.Close()
	if err := s.catchUp(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("notifications: catching up on failed tasks", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sub.C:
			if !ok {
				return nil
			}
			if err := s.fromBus(ctx, e); err != nil && ctx.Err() == nil {
				s.log.Warn("notifications: event not recorded", "type", e.Type, "id", e.ID, "err", err)
			}
		}
	}
}

// WatchFilter selects the bus events Watch turns into notifications.
func WatchFilter(e events.Event) bool {
	return (e.Type == "task" && e.State == string(store.TaskFailed)) ||
		(e.Type == "node" && e.Action == "changed" && e.State != "") || e.Type == "ha"
}

// WatchBuffer is the size of the subscription Watch reads.
const WatchBuffer = 4096

func (s *Service) fromBus(ctx context.Context, e events.Event) error {
	switch e.Type {
	case "task":
		t, err := s.st.GetTask(ctx, e.ID)
		if err != nil {
			return err
		}
		return s.Event(ctx, TaskFailed(t))
	case "node":
		return s.Event(ctx, Event{Type: EventNodeState, Key: fmt.Sprintf("node.state/%s/%s/%d", e.ID, e.State, e.At.UnixNano()),
			Subject: fmt.Sprintf("Node %s is %s", e.ID, e.State), Text: e.Message,
			Data: map[string]any{"node_id": e.ID, "state": e.State}, At: e.At})
	case "ha":
		typ := EventHA
		if e.Action != "" {
			typ += "." + e.Action
		}
		return s.Event(ctx, Event{Type: typ, Key: fmt.Sprintf("ha/%s/%s/%d", e.ID, e.Action, e.At.UnixNano()),
			Subject: strings.TrimSpace("HA " + e.Action + " " + e.ID), Text: e.Message, Owner: e.Owner,
			Data: map[string]any{"id": e.ID, "action": e.Action, "state": e.State, "target": e.Target}, At: e.At})
	}
	return nil
}

// TaskFailed is the notification of a failed task.
func TaskFailed(t store.Task) Event {
	return Event{Type: EventTaskFailed, Key: "task.failed/" + t.ID, Owner: t.Owner,
		Subject: fmt.Sprintf("Task %s failed", t.Kind),
		Text:    fmt.Sprintf("Task %s (%s on %s) failed: %s", t.ID, t.Kind, t.Target, t.Error),
		Data:    map[string]any{"task_id": t.ID, "kind": t.Kind, "target": t.Target, "error": t.Error, "error_class": t.ErrorClass},
		At:      t.Finished}
}

// cursorData is when a daemon on this store last started watching.
type cursorData struct {
	Started time.Time `json:"started"`
}

const cursorTaskFailed = "task.failed"

// catchUp records the failures of tasks that ended since the previous
// start (a minute of margin for clocks); a first start records none.
func (s *Service) catchUp(ctx context.Context) error {
	now := s.now().UTC()
	var since time.Time
	o, err := s.st.GetObject(ctx, kindCursor, cursorTaskFailed)
	switch {
	case err == nil:
		var c cursorData
		if err := json.Unmarshal(o.Data, &c); err != nil {
			return err
		}
		since = c.Started.Add(-time.Minute)
	case errors.Is(err, virtplane.ErrNotFound):
		since = now
	default:
		return err
	}
	f := store.TaskFilter{States: []store.TaskState{store.TaskFailed}, Limit: 1000}
	for {
		ts, err := s.st.ListTasks(ctx, f)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.Finished.After(since) {
				if err := s.Event(ctx, TaskFailed(t)); err != nil {
					return err
				}
			}
		}
		if len(ts) < f.Limit {
			break
		}
		f.After = ts[len(ts)-1].ID
	}
	data, _ := json.Marshal(cursorData{Started: now})
	return s.st.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, kindCursor, cursorTaskFailed)
		if errors.Is(err, virtplane.ErrNotFound) {
			return tx.CreateObject(ctx, &store.Object{Kind: kindCursor, ID: cursorTaskFailed, Name: cursorTaskFailed, Data: data})
		}
		if err != nil {
			return err
		}
		o.Data = data
		return tx.UpdateObject(ctx, &o)
	})
}

package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/notify/fake"
	"github.com/virtplane/virtplane/daemon/store"
)

func failedTask(t *testing.T, st store.Store, owner string, ago time.Duration) store.Task {
	task := store.Task{ID: store.NewID(), Kind: "vm.start", Owner: owner, Target: "vm/x", State: store.TaskQueued, Created: time.Now()}
	require.NoError(t, st.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.CreateTask(t.Context(), &task); err != nil {
			return err
		}
		task.State, task.Error, task.Finished = store.TaskFailed, "no such domain", time.Now().Add(-ago)
		return tx.UpdateTask(t.Context(), &task)
	}))
	return task
}

func watch(t *testing.T, s *notify.Service, bus *events.Bus) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sub := bus.Subscribe(notify.WatchFilter, notify.WatchBuffer)
	go func() { defer close(done); _ = s.Watch(ctx, sub) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(func() { cancel(); <-done })
	return stop
}

func TestWatchNotifiesFailedTasksAndNodeStates(t *testing.T) {
	st := dbtest.SQLite(t)
	wh := fake.New()
	s := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: wh})
	subscribe(t, s, "alice", false, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: "webhook", WebhookURL: "https://h.example.test/a"})
	subscribe(t, s, "root", true, notify.SubscriptionBody{Events: []string{notify.EventNodeState, notify.EventHA}, All: true, Channel: "webhook", WebhookURL: "https://h.example.test/r"})
	bus := events.NewBus()
	old := failedTask(t, st, "alice", 2*time.Minute) // before any daemon watched: history, not news
	stop := watch(t, s, bus)
	run(t, s)

	task := failedTask(t, st, "alice", 0)
	bus.Publish(events.Event{Type: "task", Action: "progress", ID: task.ID, Owner: "alice", State: "failed"})
	bus.Publish(events.Event{Type: "task", Action: "progress", ID: task.ID, Owner: "alice", State: "running"})
	bus.Publish(events.Event{Type: "node", Action: "changed", ID: "n1", State: "unreachable"})
	bus.Publish(events.Event{Type: "ha", Action: "fenced", ID: "n1"})
	require.Eventually(t, func() bool { return len(wh.Messages()) == 3 }, 20*time.Second, 10*time.Millisecond)
	var subjects []string
	for _, m := range wh.Messages() {
		subjects = append(subjects, m.Event+": "+m.Subject)
	}
	assert.ElementsMatch(t, []string{"task.failed: Task vm.start failed", "node.state: Node n1 is unreachable", "ha.fenced: HA fenced n1"}, subjects)
	stop()

	// A failure whose event the daemon never saw (it had stopped) is
	// notified at the next start, once.
	missed := failedTask(t, st, "alice", 0)
	watch(t, s, events.NewBus())
	require.Eventually(t, func() bool { return len(wh.Messages()) >= 4 }, 20*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.Len(t, wh.Messages(), 4, "the live failure seen before is not notified again")
	last := wh.Messages()[3]
	assert.Contains(t, string(last.Payload), missed.ID)
	for _, m := range wh.Messages() {
		assert.NotContains(t, string(m.Payload), old.ID, "failures from before the first watch are not notified")
	}
}

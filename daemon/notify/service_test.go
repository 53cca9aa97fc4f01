package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/notify/fake"
	"github.com/virtplane/virtplane/daemon/store"
)

func newService(t *testing.T, st store.Store, senders map[string]notify.Sender, tune ...func(*notify.Config)) *notify.Service {
	cfg := notify.Config{Store: st, Senders: senders, RetryMin: 20 * time.Millisecond, RetryMax: 80 * time.Millisecond,
		Poll: 10 * time.Millisecond, SendTimeout: 5 * time.Second}
	for _, f := range tune {
		f(&cfg)
	}
	s, err := notify.New(cfg)
	require.NoError(t, err)
	return s
}

// run runs the dispatcher until the returned stop is called (or the test ends).
func run(t *testing.T, s *notify.Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitDelivery(t *testing.T, s *notify.Service, id string, want string) notify.Delivery {
	t.Helper()
	var d notify.Delivery
	require.Eventually(t, func() bool {
		var err error
		d, err = s.Delivery(context.Background(), id)
		return err == nil && d.State == want
	}, 20*time.Second, 10*time.Millisecond, "delivery %s never became %s (last: %+v)", id, want, d)
	return d
}

func subscribe(t *testing.T, s *notify.Service, owner string, admin bool, b notify.SubscriptionBody) notify.Subscription {
	sub, _, err := s.CreateSubscription(t.Context(), owner, admin, "", b)
	require.NoError(t, err)
	return sub
}

func event(s *notify.Service, t *testing.T, e notify.Event) {
	require.NoError(t, s.Event(t.Context(), e))
}

func TestEventsReachTheSubscriptionsThatAskForThem(t *testing.T) {
	st := dbtest.SQLite(t)
	wh := fake.New()
	s := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: wh})
	hook := notify.SubscriptionBody{Channel: notify.ChannelWebhook, WebhookURL: "http://127.0.0.1:9/hook"}
	withEvents := func(b notify.SubscriptionBody, all bool, events ...string) notify.SubscriptionBody {
		b.Events, b.All = events, all
		return b
	}
	alice := subscribe(t, s, "alice", false, withEvents(hook, false, notify.EventTaskFailed))
	bob := subscribe(t, s, "bob", false, withEvents(hook, false, notify.EventTaskFailed, notify.EventScriptResult))
	admin := subscribe(t, s, "root", true, withEvents(hook, true, notify.EventTaskFailed, notify.EventNodeState, notify.EventHA))

	event(s, t, notify.Event{Type: notify.EventTaskFailed, Key: "task.failed/1", Owner: "alice", Subject: "task 1 failed"})
	event(s, t, notify.Event{Type: notify.EventTaskFailed, Key: "task.failed/1", Owner: "alice", Subject: "task 1 failed"}) // again
	event(s, t, notify.Event{Type: notify.EventNodeState, Key: "node.state/n1/unreachable", Subject: "node n1 unreachable"})
	event(s, t, notify.Event{Type: "ha.fenced", Key: "ha/n1/fenced", Subject: "node n1 fenced"})
	event(s, t, notify.Event{Type: notify.EventScriptResult, Key: "script.result/r1", Owner: "alice", Subject: "script done"})

	byOwner := map[string][]string{}
	all, _, err := s.Deliveries(t.Context(), "", "", 0)
	require.NoError(t, err)
	for _, d := range all {
		byOwner[d.SubscriptionID] = append(byOwner[d.SubscriptionID], d.EventKey)
	}
	assert.ElementsMatch(t, []string{"task.failed/1"}, byOwner[alice.ID], "one delivery for the event sent twice")
	assert.Empty(t, byOwner[bob.ID], "bob hears nothing of alice's task or script")
	assert.ElementsMatch(t, []string{"task.failed/1", "node.state/n1/unreachable", "ha/n1/fenced"}, byOwner[admin.ID])
	mine, _, err := s.Deliveries(t.Context(), "alice", "", 0)
	require.NoError(t, err)
	assert.Len(t, mine, 1)
}

func TestRetriedWithBackoffUntilTheReceiverIsBack(t *testing.T) {
	st := dbtest.SQLite(t)
	wh := fake.New()
	wh.SetDown(true)
	s := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: wh})
	sub := subscribe(t, s, "alice", false, notify.SubscriptionBody{Events: []string{notify.EventScriptResult}, Channel: notify.ChannelWebhook, WebhookURL: "https://hooks.example.test/x"})
	run(t, s)
	event(s, t, notify.Event{Type: notify.EventScriptResult, Key: "script.result/r1", Owner: "alice", Subject: "done"})
	all, _, err := s.Deliveries(t.Context(), "alice", "", 0)
	require.NoError(t, err)
	require.Len(t, all, 1)
	id := all[0].ID
	require.Eventually(t, func() bool { return wh.Calls() >= 4 }, 20*time.Second, 10*time.Millisecond)
	d, err := s.Delivery(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, notify.StatePending, d.State)
	assert.GreaterOrEqual(t, d.Attempts, 3)
	assert.Contains(t, d.LastError, "receiver down")
	for i := 1; i < len(d.Log); i++ {
		assert.False(t, d.Log[i].At.Before(d.Log[i-1].At))
	}
	wh.SetDown(false)
	d = waitDelivery(t, s, id, notify.StateDelivered)
	require.Len(t, wh.Messages(), 1)
	m := wh.Messages()[0]
	assert.Equal(t, id, m.ID)
	assert.Equal(t, sub.WebhookURL, m.To)
	assert.NotEmpty(t, m.Secret, "the subscription's secret signs it")
	assert.Empty(t, d.Log[len(d.Log)-1].Error)
	var p map[string]any
	require.NoError(t, json.Unmarshal(m.Payload, &p))
	delete(p, "at")
	assert.Equal(t, map[string]any{"id": id, "event": "script.result", "key": "script.result/r1", "subject": "done", "text": "", "data": nil}, p)
}

func TestPendingDeliverySurvivesARestart(t *testing.T) {
	st := dbtest.SQLite(t)
	down := fake.New()
	down.SetDown(true)
	s1 := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: down})
	subscribe(t, s1, "alice", false, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: notify.ChannelWebhook, WebhookURL: "https://hooks.example.test/x"})
	stop := run(t, s1)
	event(s1, t, notify.Event{Type: notify.EventTaskFailed, Key: "task.failed/7", Owner: "alice"})
	require.Eventually(t, func() bool { return down.Calls() >= 2 }, 20*time.Second, 10*time.Millisecond)
	stop()

	up := fake.New()
	s2 := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: up})
	run(t, s2)
	all, _, err := s2.Deliveries(t.Context(), "", "", 0)
	require.NoError(t, err)
	require.Len(t, all, 1)
	waitDelivery(t, s2, all[0].ID, notify.StateDelivered)
	assert.Len(t, up.Messages(), 1)
}

// hanging never returns before its context ends: a sender that dies with
// the daemon in the middle of a delivery.
type hanging struct{ started chan struct{} }

func (h hanging) Send(ctx context.Context, _ notify.Message) error {
	h.started <- struct{}{}
	<-ctx.Done()
	return virtplane.Errorf(virtplane.ErrCanceled, "hanging: %v", ctx.Err())
}

// TestDeliveryOfADeadSenderIsSentAgain: a daemon stops while a delivery is
// on its way; its lease runs out and the next daemon sends it (at least once).
func TestDeliveryOfADeadSenderIsSentAgain(t *testing.T) {
	st := dbtest.SQLite(t)
	h := hanging{started: make(chan struct{}, 1)}
	s1 := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: h}, func(c *notify.Config) { c.SendTimeout = 2 * time.Second })
	subscribe(t, s1, "alice", false, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: notify.ChannelWebhook, WebhookURL: "https://hooks.example.test/x"})
	stop := run(t, s1)
	event(s1, t, notify.Event{Type: notify.EventTaskFailed, Key: "task.failed/8", Owner: "alice"})
	select {
	case <-h.started:
	case <-time.After(20 * time.Second):
		t.Fatal("the first daemon never started sending")
	}
	stop() // dies while sending: nothing recorded, the lease stays
	all, _, err := s1.Deliveries(t.Context(), "", "", 0)
	require.NoError(t, err)
	require.Len(t, all, 1)
	assert.Zero(t, all[0].Attempts)

	up := fake.New()
	s2 := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: up})
	run(t, s2)
	time.Sleep(200 * time.Millisecond)
	assert.Empty(t, up.Messages(), "not before the first daemon's lease ran out")
	// The lease of the dead sender: 2 × its send timeout + 1 s. Reading it
	// from the store keeps the test off the clock.
	o, err := st.GetObject(t.Context(), notify.KindDelivery, all[0].ID)
	require.NoError(t, err)
	var rec struct {
		LeaseUntil time.Time `json:"lease_until"`
	}
	require.NoError(t, json.Unmarshal(o.Data, &rec))
	assert.True(t, rec.LeaseUntil.After(time.Now()), "the claim is durable")
	_ = o
	waitDeliveryLong(t, s2, all[0].ID, time.Until(rec.LeaseUntil)+20*time.Second)
	assert.Len(t, up.Messages(), 1)
}

func waitDeliveryLong(t *testing.T, s *notify.Service, id string, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		d, err := s.Delivery(context.Background(), id)
		return err == nil && d.State == notify.StateDelivered
	}, within, 20*time.Millisecond)
}

func TestRefusedDeliveryFailsAndStaysFailed(t *testing.T) {
	st := dbtest.SQLite(t)
	wh := fake.New()
	wh.Refuse(1)
	s := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: wh})
	subscribe(t, s, "alice", false, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: notify.ChannelWebhook, WebhookURL: "https://hooks.example.test/x"})
	run(t, s)
	event(s, t, notify.Event{Type: notify.EventTaskFailed, Key: "task.failed/9", Owner: "alice"})
	all, _, err := s.Deliveries(t.Context(), "", "", 0)
	require.NoError(t, err)
	d := waitDelivery(t, s, all[0].ID, notify.StateFailed)
	assert.Equal(t, 1, d.Attempts)
	assert.Contains(t, d.LastError, "refused")
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, 1, wh.Calls(), "a refusal is not retried")
}

func TestTooOldDeliveryGivesUp(t *testing.T) {
	st := dbtest.SQLite(t)
	wh := fake.New()
	wh.SetDown(true)
	s := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: wh}, func(c *notify.Config) { c.MaxAge = 150 * time.Millisecond })
	subscribe(t, s, "alice", false, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: notify.ChannelWebhook, WebhookURL: "https://hooks.example.test/x"})
	run(t, s)
	event(s, t, notify.Event{Type: notify.EventTaskFailed, Key: "task.failed/10", Owner: "alice"})
	all, _, err := s.Deliveries(t.Context(), "", "", 0)
	require.NoError(t, err)
	d := waitDelivery(t, s, all[0].ID, notify.StateFailed)
	assert.Contains(t, d.LastError, "giving up")
}

func TestSensitiveMailLosesItsBodyOnceDelivered(t *testing.T) {
	st := dbtest.SQLite(t)
	em := fake.New()
	s := newService(t, st, map[string]notify.Sender{notify.ChannelEmail: em})
	id, err := s.Mail(t.Context(), notify.Mail{Key: "script.mail/r1", Owner: "alice", To: "alice@example.test", Subject: "db ready", Body: "password: Hunter2Hunter2", Sensitive: true})
	require.NoError(t, err)
	id2, err := s.Mail(t.Context(), notify.Mail{Key: "script.mail/r1", Owner: "alice", To: "alice@example.test", Subject: "db ready", Body: "password: Hunter2Hunter2", Sensitive: true})
	require.NoError(t, err)
	assert.Equal(t, id, id2, "the same mail key makes one mail")
	run(t, s)
	waitDelivery(t, s, id, notify.StateDelivered)
	require.Len(t, em.Messages(), 1)
	assert.Contains(t, em.Messages()[0].Text, "Hunter2Hunter2")
	o, err := st.GetObject(t.Context(), notify.KindDelivery, id)
	require.NoError(t, err)
	assert.NotContains(t, string(o.Data), "Hunter2Hunter2", "the delivered body is gone from the store")
	view, err := json.Marshal(must(s.Delivery(t.Context(), id)))
	require.NoError(t, err)
	assert.NotContains(t, string(view), "Hunter2")

	_, err = s.Mail(t.Context(), notify.Mail{Key: "k", To: "not an address"})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	noMail := newService(t, st, nil)
	_, err = noMail.Mail(t.Context(), notify.Mail{Key: "k", To: "a@example.test"})
	require.ErrorIs(t, err, virtplane.ErrNotImplemented)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSubscriptionValidation(t *testing.T) {
	st := dbtest.SQLite(t)
	s := newService(t, st, map[string]notify.Sender{notify.ChannelWebhook: fake.New(), notify.ChannelEmail: fake.New()},
		func(c *notify.Config) {
			c.WebhookAllowed = func(host string) error {
				if host == "169.254.169.254" {
					return virtplane.Errorf(virtplane.ErrPermissionDenied, "webhook host %s is not allowed", host)
				}
				return nil
			}
		})
	hook := "https://hooks.example.test/x"
	for _, tc := range []struct {
		name  string
		admin bool
		body  notify.SubscriptionBody
		class error
		field string
	}{
		{"no events", false, notify.SubscriptionBody{Channel: "webhook", WebhookURL: hook}, virtplane.ErrInvalidArgument, "events"},
		{"unknown event", false, notify.SubscriptionBody{Events: []string{"vm.boom"}, Channel: "webhook", WebhookURL: hook}, virtplane.ErrInvalidArgument, "events[0]"},
		{"twice", false, notify.SubscriptionBody{Events: []string{"task.failed", "task.failed"}, Channel: "webhook", WebhookURL: hook}, virtplane.ErrInvalidArgument, "events[1]"},
		{"user node events", false, notify.SubscriptionBody{Events: []string{"node.state"}, Channel: "webhook", WebhookURL: hook}, virtplane.ErrPermissionDenied, "events[0]"},
		{"user all", false, notify.SubscriptionBody{Events: []string{"task.failed"}, All: true, Channel: "webhook", WebhookURL: hook}, virtplane.ErrPermissionDenied, "all"},
		{"admin node events without all", true, notify.SubscriptionBody{Events: []string{"ha"}, Channel: "webhook", WebhookURL: hook}, virtplane.ErrPermissionDenied, "events[0]"},
		{"telegram not configured", false, notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "telegram", TelegramChatID: "1"}, virtplane.ErrNotImplemented, "channel"},
		{"bad url", false, notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "webhook", WebhookURL: "ftp://x/y"}, virtplane.ErrInvalidArgument, "webhook_url"},
		{"url with credentials", false, notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "webhook", WebhookURL: "https://u:p@x/y"}, virtplane.ErrInvalidArgument, "webhook_url"},
		{"url not allowed", false, notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "webhook", WebhookURL: "http://169.254.169.254/latest"}, virtplane.ErrPermissionDenied, "webhook_url"},
		{"short secret", false, notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "webhook", WebhookURL: hook, WebhookSecret: "short"}, virtplane.ErrInvalidArgument, "webhook_secret"},
		{"email without address", false, notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "email"}, virtplane.ErrInvalidArgument, "email"},
		{"bad email", false, notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "email", Email: "Alice <a@example.test>"}, virtplane.ErrInvalidArgument, "email"},
		{"email with url", false, notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "email", Email: "a@example.test", WebhookURL: hook}, virtplane.ErrInvalidArgument, "webhook_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.CreateSubscription(t.Context(), "u", tc.admin, "", tc.body)
			require.ErrorIs(t, err, tc.class)
			var fe *notify.FieldError
			require.True(t, errors.As(err, &fe), "%v", err)
			assert.Equal(t, tc.field, fe.Field)
			assert.NotContains(t, err.Error(), "u:p@")
		})
	}
	sub, secret, err := s.CreateSubscription(t.Context(), "u", false, "", notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "webhook", WebhookURL: hook})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(secret, "whsec_"), "a secret is made when none is given")
	b, err := json.Marshal(sub)
	require.NoError(t, err)
	assert.NotContains(t, string(b), secret, "the subscription never shows its secret")
	got, err := s.Subscription(t.Context(), sub.ID)
	require.NoError(t, err)
	b, _ = json.Marshal(got)
	assert.NotContains(t, string(b), secret)
	sub2, _, err := s.CreateSubscription(t.Context(), "u", false, "u@example.test", notify.SubscriptionBody{Events: []string{"task.failed"}, Channel: "email"})
	require.NoError(t, err)
	assert.Equal(t, "u@example.test", sub2.Email, "email defaults to the user's address")
}

package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/internal/smtptest"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/scripts/mail"
	"github.com/virtplane/virtplane/vmm"
	vmmfake "github.com/virtplane/virtplane/vmm/fake"
)

// receiver is a webhook receiver on a fixed loopback port that checks
// every delivery's signature, keeps the first of each delivery ID, and can
// be stopped (connections refused) and started again.
type receiver struct {
	t      *testing.T
	addr   string
	mu     sync.Mutex
	secret string
	srv    *http.Server
	ln     net.Listener
	got    map[string]map[string]any // by delivery ID
	order  []string
	posts  int
	forged int
}

func newReceiver(t *testing.T) *receiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &receiver{t: t, addr: ln.Addr().String(), got: map[string]map[string]any{}}
	r.serve(ln)
	t.Cleanup(func() { r.setDown(true) })
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hooks/virtplane" }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.posts++
		if err := notify.VerifyWebhook(r.secret, req.Header, body, time.Now(), 5*time.Minute); err != nil {
			r.forged++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		id := req.Header.Get("X-Virtplane-Delivery")
		if _, seen := r.got[id]; !seen {
			var p map[string]any
			_ = json.Unmarshal(body, &p)
			r.got[id] = p
			r.order = append(r.order, id)
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	r.srv, r.ln = srv, ln
	go func() { _ = srv.Serve(ln) }()
}

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case down && r.srv != nil:
		_ = r.ln.Close()
		_ = r.srv.Close()
		r.srv = nil
	case !down && r.srv == nil:
		var ln net.Listener
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if ln, err = net.Listen("tcp", r.addr); err == nil || time.Now().After(deadline) {
				break
			}
		}
		require.NoError(r.t, err)
		r.serve(ln)
	}
}

func (r *receiver) deliveries() (ids []string, payloads map[string]map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	payloads = map[string]map[string]any{}
	for k, v := range r.got {
		payloads[k] = v
	}
	return append([]string(nil), r.order...), payloads
}

// notifyDaemon starts a daemon (instance "notify") on st with fast
// retries; stop stops it.
func notifyDaemon(t *testing.T, st store.Store, nc daemon.NotifyConfig) (*client.Client, func()) {
	nc.RetryMin, nc.RetryMax, nc.Poll = 100*time.Millisecond, 500*time.Millisecond, 50*time.Millisecond
	srv, err := daemon.New(daemon.Config{Store: st, Instance: "notify", DataDir: t.TempDir(), Notify: nc, LocalDriver: fakeLocalHypervisor})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = srv.Run(ctx) }()
	hs := newHTTPServer(srv.Handler())
	token, err := srv.Bootstrap(t.Context(), "admin-password")
	require.NoError(t, err)
	if token == "" {
		token, err = client.New(hs.URL, "").Login(t.Context(), "admin", "admin-password")
		require.NoError(t, err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { hs.Close(); cancel(); <-stopped; _ = srv.Close() }) }
	t.Cleanup(stop)
	return client.New(hs.URL, token), stop
}

// fakeLocalHypervisor stands in for this host's libvirtd, which the tests'
// daemons do not drive: a local node opens, and its executor (this host,
// for real) runs the scripts.
func fakeLocalHypervisor(context.Context) (vmm.Driver, error) { return vmmfake.New(), nil }

// localNode adds a cluster with the local node (this host) for runs.
func localNode(t testing.TB, c *client.Client) model.Node {
	cl, err := c.CreateCluster(context.Background(), api.ClusterBody{Name: "ops", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	n, err := c.AddNode(context.Background(), api.NodeBody{ClusterID: cl.ID, Name: "here", Address: "local", Cores: 1, MemoryMiB: 1024, DiskGiB: 1})
	require.NoError(t, err)
	return n
}

// TestWebhookDeliveriesSurviveARestart: a webhook receiver on loopback
// gets signed deliveries of script results and task failures; with the
// receiver down they are retried (the delivery log shows the attempts),
// the daemon is restarted meanwhile, and once the receiver is back every
// delivery arrives — none lost, each ID once to the application.
func TestWebhookDeliveriesSurviveARestart(t *testing.T) {
	testenv.SkipShort(t)
	st := dbtest.SQLite(t)
	rcv := newReceiver(t)
	admin, stop := notifyDaemon(t, st, daemon.NotifyConfig{})
	ctx := t.Context()
	node := localNode(t, admin)
	sub, err := admin.CreateSubscription(ctx, notify.SubscriptionBody{Events: []string{notify.EventScriptResult, notify.EventTaskFailed}, All: true,
		Channel: notify.ChannelWebhook, WebhookURL: rcv.url()})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(sub.WebhookSecret, "whsec_"))
	rcv.mu.Lock()
	rcv.secret = sub.WebhookSecret
	rcv.mu.Unlock()
	sc, err := admin.CreateScript(ctx, scriptrun.ScriptBody{Name: "exit", Kind: "shell", Body: "echo code $CODE\nexit \"$CODE\"\n",
		Params: []scriptrun.Param{{Name: "CODE", Type: "int", Default: "0"}}})
	require.NoError(t, err)
	runOnNode := func(c *client.Client, code string) scriptrun.Run {
		r, err := c.RunScript(ctx, sc.ID, scriptrun.RunBody{NodeIDs: []string{node.ID}, Args: map[string]string{"CODE": code}})
		require.NoError(t, err)
		wait(t, c, r.Task.ID, time.Minute)
		return r.Run
	}

	ok := runOnNode(admin, "0")
	require.Eventually(t, func() bool { ids, _ := rcv.deliveries(); return len(ids) == 1 }, 20*time.Second, 20*time.Millisecond)
	_, got := rcv.deliveries()
	for _, p := range got {
		assert.Equal(t, notify.EventScriptResult, p["event"])
		data, _ := p["data"].(map[string]any)
		assert.Equal(t, ok.ID, data["run_id"])
		assert.Equal(t, "succeeded", data["state"])
	}

	rcv.setDown(true)
	bad := runOnNode(admin, "3")
	var pending []notify.Delivery
	require.Eventually(t, func() bool {
		page, err := admin.ListDeliveries(ctx, "", 100)
		require.NoError(t, err)
		pending = pending[:0]
		for _, d := range page.Items {
			if d.State == notify.StatePending && d.Attempts >= 2 {
				pending = append(pending, d)
			}
		}
		return len(pending) == 2
	}, 30*time.Second, 50*time.Millisecond, "the failed run's task.failed and script.result deliveries are retried")
	for _, d := range pending {
		assert.Contains(t, d.LastError, "connection refused")
		assert.GreaterOrEqual(t, len(d.Log), 2, "the delivery log keeps the attempts")
	}
	stop()

	// A new daemon on the same store; the receiver comes back.
	admin, _ = notifyDaemon(t, st, daemon.NotifyConfig{})
	rcv.setDown(false)
	require.Eventually(t, func() bool { ids, _ := rcv.deliveries(); return len(ids) == 3 }, 30*time.Second, 20*time.Millisecond,
		"every delivery arrives after the restart")
	ids, got := rcv.deliveries()
	events := map[string]bool{}
	for _, id := range ids {
		events[got[id]["event"].(string)] = true
	}
	assert.Equal(t, map[string]bool{notify.EventScriptResult: true, notify.EventTaskFailed: true}, events)
	for _, d := range pending {
		assert.Contains(t, ids, d.ID)
		after, err := admin.GetDelivery(ctx, d.ID)
		require.NoError(t, err)
		assert.Equal(t, notify.StateDelivered, after.State)
		assert.Empty(t, after.Log[len(after.Log)-1].Error)
	}
	rcv.mu.Lock()
	assert.Zero(t, rcv.forged, "every delivery was signed with the subscription's secret")
	rcv.mu.Unlock()
	_ = bad
}

// TestEmailAndTelegramSubscriptions: a user's email subscription goes to
// the go-smtp server on loopback, a Telegram one to a stand-in of the Bot
// API on loopback (the daemon's telegram_api setting).
func TestEmailAndTelegramSubscriptions(t *testing.T) {
	st := dbtest.SQLite(t)
	smtp := smtptest.Start(t)
	var mu sync.Mutex
	var telegram []map[string]any
	bot := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bot42:token/sendMessage" {
			http.Error(w, `{"ok":false,"description":"Not Found"}`, http.StatusNotFound)
			return
		}
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		telegram = append(telegram, m)
		mu.Unlock()
		_, _ = io.WriteString(w, `{"ok":true,"result":{}}`)
	}))
	defer bot.Close()
	admin, _ := notifyDaemon(t, st, daemon.NotifyConfig{TelegramToken: "42:token", TelegramAPI: bot.URL,
		SMTP: &mail.Config{Host: "127.0.0.1", Port: smtp.Port(), From: "panel@example.test", TLS: mail.NoTLS}})
	ctx := t.Context()
	channels, _, err := admin.NotificationChannels(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"email", "telegram", "webhook"}, channels)
	u, err := admin.CreateUser(ctx, "carol", "carol-password", model.RoleUser)
	require.NoError(t, err)
	tok, err := client.New(admin.BaseURL(), "").Login(ctx, "carol", "carol-password")
	require.NoError(t, err)
	carol := client.New(admin.BaseURL(), tok)
	_, err = carol.CreateSubscription(ctx, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: notify.ChannelEmail})
	assert.Error(t, err, "no address yet")
	_, err = carol.SetUserEmail(ctx, u.ID, "carol@example.test")
	require.NoError(t, err)
	em, err := carol.CreateSubscription(ctx, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: notify.ChannelEmail})
	require.NoError(t, err)
	assert.Equal(t, "carol@example.test", em.Email)
	tg, err := carol.CreateSubscription(ctx, notify.SubscriptionBody{Events: []string{notify.EventScriptResult}, Channel: notify.ChannelTelegram, TelegramChatID: "-1001234"})
	require.NoError(t, err)
	assert.Empty(t, tg.WebhookSecret)
	for _, id := range []string{em.ID, tg.ID} {
		_, err := carol.TestSubscription(ctx, id)
		require.NoError(t, err)
	}
	msgs := smtp.Wait(t, 1, 20*time.Second)
	assert.Equal(t, "carol@example.test", msgs[0].To)
	assert.Equal(t, "virtplane test notification", msgs[0].Subject)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(telegram) == 1 }, 20*time.Second, 20*time.Millisecond)
	mu.Lock()
	assert.Equal(t, "-1001234", telegram[0]["chat_id"])
	assert.Contains(t, telegram[0]["text"], "virtplane test notification")
	mu.Unlock()
	// The receivers took them; the log records it right after.
	require.Eventually(t, func() bool {
		page, err := carol.ListDeliveries(ctx, "", 10)
		require.NoError(t, err)
		require.Len(t, page.Items, 2)
		for _, d := range page.Items {
			if d.State != notify.StateDelivered || d.Attempts != 1 {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond)
}

func newHTTPServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

// TestWebhookAllowList: with webhook_allow set, a subscription to a host
// outside it is refused naming the field.
func TestWebhookAllowList(t *testing.T) {
	admin, _ := notifyDaemon(t, dbtest.SQLite(t), daemon.NotifyConfig{WebhookAllow: []string{"127.0.0.0/8", "hooks.example.test"}})
	ctx := t.Context()
	for _, u := range []string{"http://127.0.0.1:9/h", "https://hooks.example.test/h", "https://HOOKS.example.test/h"} {
		_, err := admin.CreateSubscription(ctx, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: "webhook", WebhookURL: u})
		require.NoError(t, err, u)
	}
	for _, u := range []string{"http://169.254.169.254/latest/meta-data", "https://10.1.2.3/h", "https://evil.example.test/h"} {
		_, err := admin.CreateSubscription(ctx, notify.SubscriptionBody{Events: []string{notify.EventTaskFailed}, Channel: "webhook", WebhookURL: u})
		p := problemOf(t, err)
		assert.Equal(t, http.StatusForbidden, p.Status, u)
		assert.Equal(t, "body.webhook_url", p.Field())
	}
	_, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "x", Notify: daemon.NotifyConfig{WebhookAllow: []string{"not a host/"}}})
	require.Error(t, err)
}

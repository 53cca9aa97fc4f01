package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/notify/fake"
	"github.com/virtplane/virtplane/daemon/notify/notifytest"
	"github.com/virtplane/virtplane/internal/smtptest"
	"github.com/virtplane/virtplane/scripts/mail"
)

func TestFakeConformance(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
		s := fake.New()
		return notifytest.Harness{Sender: s, To: "someone", SetDown: s.SetDown, Refuse: s.Refuse,
			Received: func() []notifytest.Received {
				var out []notifytest.Received
				for _, m := range s.Messages() {
					out = append(out, notifytest.Received{ID: m.ID, Subject: m.Subject, Text: m.Text})
				}
				return out
			}}
	})
}

// TestEmailConformance runs the suite against a real SMTP server (go-smtp)
// on loopback.
func TestEmailConformance(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
		srv := smtptest.Start(t)
		s, err := notify.NewEmailSender(mail.Config{Host: "127.0.0.1", Port: srv.Port(), From: "panel@example.test", TLS: mail.NoTLS, Timeout: 10 * time.Second})
		require.NoError(t, err)
		return notifytest.Harness{Sender: s, To: "user@example.test",
			SetDown: func(down bool) { srv.SetDown(t, down) }, Refuse: srv.Refuse,
			Received: func() []notifytest.Received {
				var out []notifytest.Received
				for _, m := range srv.Messages() {
					out = append(out, notifytest.Received{Subject: m.Subject, Text: m.Body})
				}
				return out
			}}
	})
}

// switchable is an HTTP server on a fixed loopback port that a test can
// stop (connections refused) and start again.
type switchable struct {
	t       *testing.T
	addr    string
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
	ln      net.Listener
}

func newSwitchable(t *testing.T, h http.Handler) *switchable {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &switchable{t: t, addr: ln.Addr().String(), handler: h}
	s.start(ln)
	t.Cleanup(func() { s.SetDown(true) })
	return s
}

func (s *switchable) start(ln net.Listener) {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
	s.srv, s.ln = srv, ln
	go func() { _ = srv.Serve(ln) }()
}

func (s *switchable) URL() string { return "http://" + s.addr }

func (s *switchable) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case down && s.srv != nil:
		_ = s.ln.Close() // Close may come before Serve has taken it
		_ = s.srv.Close()
		s.srv = nil
	case !down && s.srv == nil:
		var ln net.Listener
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if ln, err = net.Listen("tcp", s.addr); err == nil || time.Now().After(deadline) {
				break
			}
		}
		require.NoError(s.t, err)
		s.start(ln)
	}
}

// botAPI is a stand-in for Telegram's Bot API (only sendMessage), on
// loopback: the test cannot reach Telegram.
type botAPI struct {
	token  string
	mu     sync.Mutex
	got    []notifytest.Received
	refuse int
}

func (b *botAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/bot"+b.token+"/sendMessage" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"ok":false,"error_code":404,"description":"Not Found"}`)
		return
	}
	var req struct {
		ChatID string `json:"chat_id"`
		Text   string `json:"text"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ChatID == "" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"ok":false,"error_code":400,"description":"Bad Request: message text is empty"}`)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refuse > 0 {
		b.refuse--
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`)
		return
	}
	subject, text, _ := strings.Cut(req.Text, "\n\n")
	b.got = append(b.got, notifytest.Received{Subject: subject, Text: text})
	_, _ = io.WriteString(w, `{"ok":true,"result":{"message_id":1}}`)
}

func (b *botAPI) received() []notifytest.Received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]notifytest.Received(nil), b.got...)
}

func TestTelegramConformance(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
		api := &botAPI{token: "123456:secret-bot-token"}
		srv := newSwitchable(t, api)
		s, err := notify.NewTelegramSender(srv.URL(), api.token, nil)
		require.NoError(t, err)
		return notifytest.Harness{Sender: s, To: "-100123", Secret: api.token, SetDown: srv.SetDown, Received: api.received,
			Refuse: func(n int) { api.mu.Lock(); api.refuse += n; api.mu.Unlock() }}
	})
}

// webhookReceiver takes signed deliveries and refuses badly signed ones.
type webhookReceiver struct {
	secret string
	mu     sync.Mutex
	got    []notifytest.Received
	ids    map[string]int
	refuse int
	bad    int
}

func (wr *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := notify.VerifyWebhook(wr.secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		wr.mu.Lock()
		wr.bad++
		wr.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if wr.refuse > 0 {
		wr.refuse--
		http.Error(w, "gone", http.StatusGone)
		return
	}
	var p struct {
		Subject string `json:"subject"`
		Text    string `json:"text"`
		N       int    `json:"n"`
	}
	_ = json.Unmarshal(body, &p)
	id := r.Header.Get("X-Virtplane-Delivery")
	if wr.ids == nil {
		wr.ids = map[string]int{}
	}
	wr.ids[id]++
	wr.got = append(wr.got, notifytest.Received{ID: id, Subject: p.Subject, Text: p.Text + "\n" + string(body)})
	w.WriteHeader(http.StatusNoContent)
}

func (wr *webhookReceiver) received() []notifytest.Received {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return append([]notifytest.Received(nil), wr.got...)
}

func TestWebhookConformance(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
		wr := &webhookReceiver{secret: "whsec_conformance-secret"}
		srv := newSwitchable(t, wr)
		return notifytest.Harness{Sender: webhookWithText{notify.NewWebhookSender(nil)}, To: srv.URL() + "/hook", Secret: wr.secret,
			SetDown: srv.SetDown, Received: wr.received,
			Refuse: func(n int) { wr.mu.Lock(); wr.refuse += n; wr.mu.Unlock() }}
	})
}

// webhookWithText puts the message's subject and text into the payload,
// as the service does for events (the suite's payload carries neither).
type webhookWithText struct{ s *notify.WebhookSender }

func (w webhookWithText) Send(ctx context.Context, m notify.Message) error {
	b, _ := json.Marshal(map[string]any{"id": m.ID, "event": m.Event, "subject": m.Subject, "text": m.Text})
	m.Payload = b
	return w.s.Send(ctx, m)
}

func TestWebhookSignature(t *testing.T) {
	wr := &webhookReceiver{secret: "the-right-secret-123"}
	srv := newSwitchable(t, wr)
	s := notify.NewWebhookSender(nil)
	err := s.Send(t.Context(), notify.Message{ID: "d1", Event: "test", To: srv.URL(), Secret: "a-wrong-secret-456", Payload: []byte(`{}`)})
	require.Error(t, err, "the receiver refuses a delivery signed with another secret")
	require.False(t, notify.Retryable(err))
	require.NotContains(t, err.Error(), "a-wrong-secret-456")
	require.Equal(t, 1, wr.bad)
	h := http.Header{}
	h.Set("X-Virtplane-Timestamp", "1")
	h.Set("X-Virtplane-Signature", notify.Sign("k", 1, []byte("b")))
	require.Error(t, notify.VerifyWebhook("k", h, []byte("b"), time.Now(), time.Minute), "an old timestamp is refused")
	require.NoError(t, notify.VerifyWebhook("k", h, []byte("b"), time.Unix(30, 0), time.Minute))
}

// Package notifytest is the conformance suite every notify.Sender passes:
// the fake, and the email, Telegram and webhook senders against real
// receivers on loopback (a go-smtp server, an HTTP server speaking the
// Bot API's sendMessage, a webhook receiver that checks signatures).
//
//	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
//		s := fake.New()
//		return notifytest.Harness{Sender: s, To: "x", Received: ..., SetDown: s.SetDown, Refuse: s.Refuse}
//	})
package notifytest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/notify"
)

// Received is a message as the receiver got it.
type Received struct {
	// ID is the delivery ID, where the channel carries one (webhooks).
	ID      string
	Subject string
	// Text holds the message's text (for Telegram: subject and text).
	Text string
}

// Harness is a sender and its receiver.
type Harness struct {
	Sender notify.Sender
	// To and Secret address the receiver.
	To, Secret string
	// Received returns what the receiver took, in order.
	Received func() []Received
	// SetDown makes the receiver unreachable or back.
	SetDown func(down bool)
	// Refuse makes the receiver refuse the next n messages for good.
	Refuse func(n int)
}

func message(h Harness, n int) notify.Message {
	id := fmt.Sprintf("d%023d", n)
	return notify.Message{ID: id, Event: notify.EventTest, To: h.To, Secret: h.Secret,
		Subject: fmt.Sprintf("Subject %d: ünïcødé ✓", n),
		Text:    fmt.Sprintf("line one of %d\nline two: <b>&amp;</b> 'quotes' \"double\"", n),
		Payload: []byte(fmt.Sprintf(`{"id":%q,"event":"test","n":%d}`, id, n)), At: time.Now()}
}

// Run runs the suite; newHarness is called once per subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("Delivers", func(t *testing.T) {
		h := newHarness(t)
		m := message(h, 1)
		require.NoError(t, h.Sender.Send(t.Context(), m))
		got := h.Received()
		require.Len(t, got, 1)
		assert.Contains(t, got[0].Subject+"\n"+got[0].Text, m.Subject)
		assert.Contains(t, got[0].Text, "line one of 1\nline two: <b>&amp;</b> 'quotes' \"double\"")
		if got[0].ID != "" {
			assert.Equal(t, m.ID, got[0].ID)
		}
	})
	t.Run("DownIsRetryable", func(t *testing.T) {
		h := newHarness(t)
		h.SetDown(true)
		m := message(h, 2)
		err := h.Sender.Send(t.Context(), m)
		require.Error(t, err)
		assert.True(t, notify.Retryable(err), "a receiver that is down is worth trying again: %v", err)
		if m.Secret != "" {
			assert.NotContains(t, err.Error(), m.Secret)
		}
		assert.Empty(t, h.Received())
		h.SetDown(false)
		require.NoError(t, h.Sender.Send(t.Context(), m))
		assert.Len(t, h.Received(), 1)
	})
	t.Run("RefusalIsFinal", func(t *testing.T) {
		h := newHarness(t)
		h.Refuse(1)
		err := h.Sender.Send(t.Context(), message(h, 3))
		require.Error(t, err)
		assert.False(t, notify.Retryable(err), "a refusal does not change by trying again: %v", err)
		require.NoError(t, h.Sender.Send(t.Context(), message(h, 4)), "only the next one was refused")
		got := h.Received()
		require.Len(t, got, 1)
		assert.Contains(t, got[0].Subject+got[0].Text, "Subject 4")
	})
	t.Run("CanceledIsRetryable", func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := h.Sender.Send(ctx, message(h, 5))
		require.Error(t, err)
		assert.True(t, notify.Retryable(err), "%v", err)
		assert.Empty(t, h.Received())
	})
	t.Run("Order", func(t *testing.T) {
		h := newHarness(t)
		for i := 10; i < 13; i++ {
			require.NoError(t, h.Sender.Send(t.Context(), message(h, i)))
		}
		got := h.Received()
		require.Len(t, got, 3)
		for i, r := range got {
			assert.True(t, strings.Contains(r.Subject+r.Text, fmt.Sprintf("Subject %d", 10+i)), "%+v", r)
		}
	})
}

package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGoldenNotify(t *testing.T) {
	c := newCLI(t)
	c.login()
	var got atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	t.Cleanup(hook.Close)
	// A placeholder of the same width (ephemeral ports have 5 digits) keeps tables aligned.
	c.ids[hook.URL] = "http://HOOK" + strings.Repeat("_", len(hook.URL)-len("http://HOOK"))
	c.record("notify", "channels")
	_, out := c.record("notify", "subscription", "create", "--event", "task.failed", "--channel", "webhook", "--webhook-url", hook.URL+"/ops")
	sub := idPattern.FindString(out)
	require.NotEmpty(t, sub, out)
	c.stdin = "0123456789abcdef-key\n"
	c.record("notify", "subscription", "create", "--event", "task.failed,script.result", "--channel", "webhook", "--webhook-url", hook.URL+"/ci", "--webhook-secret-stdin", "-o", "json")
	c.record("notify", "subscription", "create", "--event", "vm.exploded", "--channel", "webhook", "--webhook-url", hook.URL+"/x")
	c.record("notify", "subscription", "create", "--event", "task.failed", "--channel", "pigeon")
	c.record("notify", "subscription", "create", "--event", "task.failed")
	c.record("notify", "subscription", "list")
	c.record("notify", "subscription", "get", sub, "-o", "yaml")
	// Not in the transcript: the delivery it prints is pending, or on a
	// loaded machine already delivered by the background sender.
	out = c.must("notify", "subscription", "test", sub)
	require.Contains(t, out, "webhook")
	delivery := idPattern.FindString(strings.SplitN(out, "\n", 2)[1])
	require.NotEmpty(t, delivery, out)
	// The delivery is sent in the background: wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.must("notify", "delivery", delivery, "-o", "json"), `"state": "delivered"`) {
		require.True(t, time.Now().Before(deadline), "the test delivery was not delivered within 20s")
		time.Sleep(20 * time.Millisecond)
	}
	require.EqualValues(t, 1, got.Load())
	c.record("notify", "deliveries")
	c.record("notify", "delivery", delivery)
	c.record("notify", "delivery", "no-such-delivery")
	c.record("notify", "deliveries", "--limit", "0")
	c.record("notify", "subscription", "delete", sub)
	c.record("notify", "subscription", "get", sub)
	c.record("notify", "subscription", "test", sub)
	c.golden("notify")
	require.NotContains(t, c.transcript.String(), "0123456789abcdef-key", "the secret given reached an output")
}

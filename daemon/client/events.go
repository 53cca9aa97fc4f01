package client

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/events"
)

// Subscription delivers the daemon's events (GET /v1/events) the caller
// may see, on C, until Close or until the stream ends; Err then tells why.
type Subscription struct {
	C <-chan events.Event

	conn   *websocket.Conn
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

// Subscribe opens the event stream. Events that arrive while C is not read
// wait in the connection; the daemon drops events for a reader that stays
// behind for long.
func (c *Client) Subscribe(ctx context.Context) (*Subscription, error) {
	u := c.base + "/v1/events"
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	// The HTTP client's timeout would cut a stream off: dial with its
	// transport alone.
	hc := &http.Client{Transport: c.http.Transport}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h, HTTPClient: hc})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			return nil, &Problem{Status: resp.StatusCode, Title: resp.Status, Detail: "event stream refused"}
		}
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "event stream %s: %v", u, err)
	}
	conn.SetReadLimit(1 << 20)
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ch := make(chan events.Event, 64)
	s := &Subscription{C: ch, conn: conn, cancel: cancel, done: make(chan struct{})}
	go s.read(sctx, ch)
	// ctx bounds the subscription's life too.
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

func (s *Subscription) read(ctx context.Context, ch chan<- events.Event) {
	defer close(s.done)
	defer close(ch)
	for {
		var e events.Event
		if err := wsjson.Read(ctx, s.conn, &e); err != nil {
			s.mu.Lock()
			if ctx.Err() == nil {
				s.err = virtplane.Errorf(virtplane.ErrUnavailable, "event stream: %v", err)
			}
			s.mu.Unlock()
			return
		}
		select {
		case ch <- e:
		case <-ctx.Done():
			return
		}
	}
}

// Err returns why the stream ended; nil while it runs or after Close.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription; C is closed soon after.
func (s *Subscription) Close() {
	s.cancel()
	_ = s.conn.Close(websocket.StatusNormalClosure, "")
	<-s.done
}

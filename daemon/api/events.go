package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/virtplane/virtplane/daemon/events"
)

// eventStream upgrades to a WebSocket and sends the events the caller may
// see as JSON messages, one event each. Browsers cannot set headers on a
// WebSocket, so the token may also come as ?token=.
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) {
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		secret = r.URL.Query().Get("token")
	}
	p, err := s.cfg.Auth.Verify(r.Context(), strings.TrimSpace(secret))
	if err != nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(statusOf(err))
		_, _ = w.Write([]byte(`{"title":"Unauthorized","status":401,"detail":"a valid token is required"}`))
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	sub := s.cfg.Events.Subscribe(func(e events.Event) bool { return p.CanAccess(e.Owner) }, 256)
	defer sub.Close()
	// The client sends nothing; reading detects its close.
	ctx := c.CloseRead(r.Context())
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := wsjson.Write(wctx, c, e)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

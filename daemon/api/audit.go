package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/virtplane/virtplane/daemon/store"
)

// AuditEntry is one mutating call as the audit log keeps it: who, what,
// on which object, when, and how it ended.
type AuditEntry struct {
	ID        string          `json:"id"`
	At        time.Time       `json:"at"`
	ActorID   string          `json:"actor_id,omitempty" doc:"the calling user; empty for a call without a token (login)"`
	Actor     string          `json:"actor,omitempty" doc:"the calling user's name"`
	Operation string          `json:"operation" doc:"the OpenAPI operation ID"`
	Method    string          `json:"method"`
	Path      string          `json:"path"`
	Target    string          `json:"target,omitempty" doc:"the ID in the path, when there is one"`
	Status    int             `json:"status" doc:"the HTTP status of the answer: a refused call is recorded too"`
	Body      json.RawMessage `json:"body,omitempty" doc:"the request body, secrets (passwords, user data) replaced by \"(redacted)\"; a body past 4 KiB is recorded by its size alone"`
}

// auditBodyMax bounds the body an entry keeps.
const auditBodyMax = 4 << 10

// redacted are the body fields an audit entry never keeps.
var redacted = map[string]bool{"password": true, "user_data": true, "bind_password": true, "secret": true, "token": true}

// audit records every call of a mutating method, after it ran, with the
// caller the authentication found. The entry is written once the answer
// is out: a crash between the two loses the entry, never the change's
// answer. The write goes through the store's group commit.
func (s *Server) audit(ctx huma.Context, next func(huma.Context)) {
	switch ctx.Method() {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		next(ctx)
		return
	}
	head, err := io.ReadAll(io.LimitReader(ctx.BodyReader(), auditBodyMax+1))
	if err != nil {
		head = nil
	}
	next(&bodyContext{humaContext: ctx, body: io.MultiReader(bytes.NewReader(head), ctx.BodyReader())})
	p := principal(ctx.Context())
	e := AuditEntry{ID: store.NewID(), At: time.Now().UTC(), ActorID: p.UserID, Actor: p.Name,
		Operation: ctx.Operation().OperationID, Method: ctx.Method(), Path: ctx.URL().Path,
		Target: ctx.Param("id"), Status: ctx.Status(), Body: auditBody(head)}
	data, err := json.Marshal(e)
	if err == nil {
		err = s.st.Update(context.WithoutCancel(ctx.Context()), func(tx store.Tx) error {
			return tx.CreateObject(ctx.Context(), &store.Object{Kind: store.KindAudit, ID: e.ID, Name: e.ID, Owner: e.ActorID, Parent: e.Target, Data: data})
		})
	}
	if err != nil {
		s.auditFailures.Inc()
	}
}

// bodyContext is a huma context whose body is read again from the start.
type bodyContext struct {
	humaContext
	body io.Reader
}

func (c *bodyContext) BodyReader() io.Reader { return c.body }

// auditBody is what an entry keeps of a request body.
func auditBody(b []byte) json.RawMessage {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	if len(b) > auditBodyMax {
		out, _ := json.Marshal(map[string]string{"(body)": "more than 4 KiB"})
		return out
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		out, _ := json.Marshal(map[string]string{"(body)": "not JSON"})
		return out
	}
	out, err := json.Marshal(redact(v))
	if err != nil {
		return nil
	}
	return out
}

func redact(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if redacted[strings.ToLower(k)] {
				t[k] = "(redacted)"
			} else {
				t[k] = redact(x)
			}
		}
	case []any:
		for i, x := range t {
			t[i] = redact(x)
		}
	}
	return v
}

func (s *Server) registerAudit() {
	s.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "virtplane_audit_write_failures_total",
		Help: "Mutating API calls whose audit entry could not be stored.",
	})
	s.cfg.Metrics.Registry().MustRegister(s.auditFailures)
	type listAudit struct {
		PageInput
		Actor  string `query:"actor" doc:"only the calls of this user ID"`
		Target string `query:"target" doc:"only the calls on this object ID"`
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "listAudit", Method: http.MethodGet, Path: "/v1/audit", Tags: []string{"audit"},
		Summary:     "The audit log: every mutating call, oldest first (admin)",
		Description: "One entry per POST, PUT, PATCH and DELETE that reached its operation (a call without a valid token is not one), refused calls included, with who made it, the object it named and the request body without secrets.",
	}, func(ctx context.Context, in *listAudit) (*struct{ Body Page[AuditEntry] }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		opts := store.ListOptions{Owner: in.Actor, Parent: in.Target, After: in.After, Limit: in.Limit}
		if opts.Limit <= 0 {
			opts.Limit = 100
		}
		p, err := listObjects[AuditEntry](ctx, s.st, store.KindAudit, opts, nil)
		return &struct{ Body Page[AuditEntry] }{p}, problem(err)
	})
}

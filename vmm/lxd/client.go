package lxd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
)

// envelope is LXD's response wrapper.
type envelope struct {
	Type       string          `json:"type"` // sync, async, error
	Status     string          `json:"status"`
	StatusCode int             `json:"status_code"`
	Operation  string          `json:"operation"`
	ErrorCode  int             `json:"error_code"`
	Error      string          `json:"error"`
	Metadata   json.RawMessage `json:"metadata"`
}

type operation struct {
	ID         string          `json:"id"`
	Status     string          `json:"status"`
	StatusCode int             `json:"status_code"`
	Err        string          `json:"err"`
	Metadata   json.RawMessage `json:"metadata"`
}

// client speaks LXD's REST API over its unix socket.
type client struct {
	http *http.Client
}

func newClient(socket string) *client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	return &client{http: &http.Client{Transport: tr}}
}

// classFor maps an LXD status to an error class.
func classFor(code int, msg string) error {
	switch {
	case code == http.StatusNotFound:
		return virtplane.ErrNotFound
	case code == http.StatusConflict || strings.Contains(msg, "already exists"):
		return virtplane.ErrAlreadyExists
	case code == http.StatusBadRequest:
		if strings.Contains(msg, "running") || strings.Contains(msg, "stopped") || strings.Contains(msg, "frozen") {
			return virtplane.ErrConflict
		}
		return virtplane.ErrInvalidArgument
	case code == http.StatusForbidden:
		return virtplane.ErrPermissionDenied
	case code == http.StatusServiceUnavailable:
		return virtplane.ErrUnavailable
	}
	return nil
}

func lxdError(op string, code int, msg string) error {
	if c := classFor(code, msg); c != nil {
		return fmt.Errorf("lxd: %s: %s: %w", op, msg, c)
	}
	return fmt.Errorf("lxd: %s: %s (status %d)", op, msg, code)
}

func ctxError(op string, ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return virtplane.Errorf(virtplane.ErrTimeout, "lxd: %s: %v", op, ctx.Err())
		}
		return virtplane.Errorf(virtplane.ErrCanceled, "lxd: %s: %v", op, ctx.Err())
	}
	return virtplane.Errorf(virtplane.ErrUnavailable, "lxd: %s: %v", op, err)
}

// raw sends a request and returns the envelope, turning error envelopes
// into classified errors.
func (c *client) raw(ctx context.Context, method, path string, body any) (envelope, error) {
	op := method + " " + path
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return envelope{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://lxd"+path, rd)
	if err != nil {
		return envelope{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return envelope{}, ctxError(op, ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return envelope{}, ctxError(op, ctx, err)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return envelope{}, fmt.Errorf("lxd: %s: bad response (status %d): %w", op, resp.StatusCode, err)
	}
	if env.Type == "error" || resp.StatusCode >= 400 {
		code := env.ErrorCode
		if code == 0 {
			code = resp.StatusCode
		}
		return env, lxdError(op, code, env.Error)
	}
	return env, nil
}

// call sends a request; an async answer is awaited under ctx. out, when
// not nil, receives the metadata (of the operation, for async calls).
func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	env, err := c.raw(ctx, method, path, body)
	if err != nil {
		return err
	}
	meta := env.Metadata
	if env.Type == "async" {
		o, err := c.wait(ctx, env.Operation, method+" "+path)
		if err != nil {
			return err
		}
		meta = o.Metadata
	}
	if out != nil && len(meta) > 0 && string(meta) != "null" {
		if err := json.Unmarshal(meta, out); err != nil {
			return fmt.Errorf("lxd: %s: decode: %w", path, err)
		}
	}
	return nil
}

// wait blocks on /1.0/operations/{id}/wait in slices of at most 30 s, so
// that a cancelled ctx is noticed and a long operation does not hit an
// HTTP timeout.
func (c *client) wait(ctx context.Context, opPath, what string) (operation, error) {
	if !strings.HasPrefix(opPath, "/1.0/operations/") {
		return operation{}, fmt.Errorf("lxd: %s: bad operation %q", what, opPath)
	}
	for {
		secs := 30
		if dl, ok := ctx.Deadline(); ok {
			secs = max(1, min(secs, int(time.Until(dl).Seconds())+1))
		}
		var o operation
		env, err := c.raw(ctx, http.MethodGet, fmt.Sprintf("%s/wait?timeout=%d", opPath, secs), nil)
		if err != nil {
			if ctx.Err() != nil {
				// Best effort: cancel what can be cancelled.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				_, _ = c.raw(cctx, http.MethodDelete, opPath, nil)
				cancel()
			}
			return o, err
		}
		if err := json.Unmarshal(env.Metadata, &o); err != nil {
			return o, fmt.Errorf("lxd: %s: decode operation: %w", what, err)
		}
		switch o.Status {
		case "Success":
			return o, nil
		case "Failure", "Cancelled":
			return o, lxdError(what, o.StatusCode, o.Err)
		}
		if ctx.Err() != nil {
			return o, ctxError(what, ctx, ctx.Err())
		}
	}
}

// get fetches a URL path and returns the body (for exec output logs).
func (c *client) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://lxd"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, ctxError("GET "+path, ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, lxdError("GET "+path, resp.StatusCode, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

func esc(s string) string { return url.PathEscape(s) }

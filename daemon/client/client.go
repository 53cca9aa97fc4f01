package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
)

// Client calls one daemon.
type Client struct {
	base      string
	token     string
	http      *http.Client
	retry     Retry
	userAgent string
	ops       map[string]Op // Operations by ID
	// Poll is the interval of WaitTask and Task.Wait.
	Poll time.Duration
}

// Retry says how often and how fast idempotent requests are repeated.
type Retry struct {
	// Attempts is how many times a request is repeated after the first
	// try; 0 turns retries off.
	Attempts int
	// Backoff is the wait before the first repeat; it doubles each time,
	// up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
}

func (r Retry) wait(ctx context.Context, try int) error {
	d := r.Backoff << (try - 1)
	if d > r.MaxBackoff || d <= 0 {
		d = r.MaxBackoff
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (timeouts, TLS).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetry sets the retries of idempotent requests (default: 3 repeats,
// 100 ms doubling up to 2 s).
func WithRetry(r Retry) Option { return func(c *Client) { c.retry = r } }

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the daemon at base ("http://host:port") that
// authenticates with token (may be empty for Login).
func New(base, token string, opts ...Option) *Client {
	c := &Client{base: strings.TrimSuffix(base, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}, Poll: 100 * time.Millisecond,
		retry: Retry{Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	c.ops = map[string]Op{}
	for _, op := range Operations() {
		c.ops[op.ID] = op
	}
	return c
}

// BaseURL returns the daemon's URL the client calls.
func (c *Client) BaseURL() string { return c.base }

// Token returns the token the client authenticates with.
func (c *Client) Token() string { return c.token }

// WithToken returns a copy of the client that uses another token.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// Problem is an RFC 9457 problem document the daemon answered.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

func (p *Problem) Error() string {
	s := fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	for _, e := range p.Errors {
		s += fmt.Sprintf(" [%s: %s]", e.Location, e.Message)
	}
	return s
}

// Field returns the location of the first field error ("body.name"), or "".
func (p *Problem) Field() string {
	if len(p.Errors) == 0 {
		return ""
	}
	return p.Errors[0].Location
}

// Unwrap returns the virtplane error class of the status.
func (p *Problem) Unwrap() error {
	switch p.Status {
	case http.StatusNotFound:
		return virtplane.ErrNotFound
	case http.StatusConflict:
		if strings.HasSuffix(p.Type, "already-exists") {
			return virtplane.ErrAlreadyExists
		}
		return virtplane.ErrConflict
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		return virtplane.ErrInvalidArgument
	case http.StatusServiceUnavailable:
		return virtplane.ErrUnavailable
	case http.StatusInsufficientStorage:
		return virtplane.ErrResourceExhausted
	case http.StatusNotImplemented:
		return virtplane.ErrNotImplemented
	case http.StatusForbidden:
		return virtplane.ErrPermissionDenied
	case http.StatusUnauthorized:
		return virtplane.ErrUnauthenticated
	case http.StatusGatewayTimeout:
		return virtplane.ErrTimeout
	}
	return nil
}

// Do sends a request with a JSON body (nil for none) and decodes the JSON
// answer into out (nil to discard). headers are extra request headers.
// Idempotent requests (GET, PUT, DELETE, and any request with an
// Idempotency-Key header) are retried when the daemon cannot be reached or
// answers 502, 503 or 504; see WithRetry.
func (c *Client) Do(ctx context.Context, method, path string, in, out any, headers ...string) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "request body: %v", err)
		}
		body = b
	}
	idempotent := method == http.MethodGet || method == http.MethodHead || method == http.MethodPut || method == http.MethodDelete
	for i := 0; i+1 < len(headers); i += 2 {
		if http.CanonicalHeaderKey(headers[i]) == "Idempotency-Key" && headers[i+1] != "" {
			idempotent = true
		}
	}
	attempts := 1
	if idempotent {
		attempts += c.retry.Attempts
	}
	var err error
	for try := 0; try < attempts; try++ {
		if try > 0 {
			if werr := c.retry.wait(ctx, try); werr != nil {
				return err
			}
		}
		var retryable bool
		retryable, err = c.send(ctx, method, path, body, in != nil, out, headers)
		if err == nil || !retryable {
			return err
		}
	}
	return err
}

// send makes one attempt of a request; retryable reports a failure a
// repeat may cure (the daemon unreachable, or answering 502, 503, 504).
func (c *Client) send(ctx context.Context, method, path string, body []byte, hasBody bool, out any, headers []string) (retryable bool, err error) {
	var r io.Reader
	if hasBody {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return false, virtplane.Errorf(virtplane.ErrInvalidArgument, "request %s %s: %v", method, path, err)
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, virtplane.Errorf(virtplane.ErrTimeout, "%s %s: %v", method, path, err)
		}
		return true, virtplane.Errorf(virtplane.ErrUnavailable, "%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return true, virtplane.Errorf(virtplane.ErrUnavailable, "%s %s: reading the answer: %v", method, path, err)
	}
	if resp.StatusCode >= 400 {
		p := &Problem{Status: resp.StatusCode, Title: resp.Status}
		_ = json.Unmarshal(data, p)
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true, p
		}
		return false, p
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return false, virtplane.Errorf(virtplane.ErrUnavailable, "%s %s: decoding the answer: %v", method, path, err)
		}
	}
	return false, nil
}

// Page is one page of a list.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// TaskError returns nil for a succeeded task and an error carrying the
// task's error and class otherwise.
func TaskError(t api.TaskView) error {
	if t.State == "succeeded" {
		return nil
	}
	class := virtplane.ErrConflict
	if t.State == "canceled" {
		class = virtplane.ErrCanceled
	}
	for _, c := range []error{virtplane.ErrNotFound, virtplane.ErrAlreadyExists, virtplane.ErrConflict, virtplane.ErrInvalidArgument,
		virtplane.ErrUnavailable, virtplane.ErrResourceExhausted, virtplane.ErrNotImplemented, virtplane.ErrPermissionDenied,
		virtplane.ErrUnauthenticated, virtplane.ErrCanceled, virtplane.ErrTimeout} {
		if c.Error() == t.ErrorClass {
			class = c
		}
	}
	return virtplane.Errorf(class, "task %s (%s) %s: %s", t.ID, t.Kind, t.State, t.Error)
}

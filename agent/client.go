package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/virtplane/virtplane"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Dial opens a stream to the agent (the agent's unix socket on the
	// node, through the controller's SSH connection: sshnode.Conn.DialUnix).
	// It is called for every new connection, bounded by ctx.
	Dial func(ctx context.Context) (net.Conn, error)
	// Version is the controller's software version; the agent refuses
	// calls when it runs another one (empty: not compared).
	Version string
	// CallTimeout bounds a call whose context has no deadline (default
	// 2 minutes). Event streams last as long as their context instead.
	CallTimeout time.Duration
	// Logger receives reconnects and retries; the default discards.
	Logger *slog.Logger
	// Node names the node in errors.
	Node string
}

// Client is a controller's connection to one node's agent. Its VMM, Pool,
// Ports and Exec values are the node's drivers, and pass the same
// conformance suites. It connects on first use, keeps a few connections
// open for reads, and dials anew after a connection dropped or the agent
// restarted; reads that failed on the way are retried once. Calls that
// change something go on a connection of their own (see roundTrip). Safe
// for concurrent use.
type Client struct {
	cfg  ClientConfig
	log  *slog.Logger
	tr   *http.Transport // reads: connections kept open
	once *http.Transport // changes: a new connection each
	life context.Context // canceled by Close
	stop context.CancelFunc

	hello atomic.Pointer[Hello]
	// dials counts new connections; helloDials is the count the last
	// Hello saw. A new connection may reach a restarted (or upgraded)
	// agent: the next capability question makes the handshake again.
	dials, helloDials atomic.Int64

	mu       sync.Mutex
	opened   map[string]PoolSpec // pools this client opened, for reopening after an agent restart
	poolCaps map[string][]string
}

// NewClient returns a client; it does not connect yet.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Dial == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent client: Dial is required")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Minute
	}
	c := &Client{cfg: cfg, log: cfg.Logger, opened: map[string]PoolSpec{}, poolCaps: map[string][]string{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.life, c.stop = context.WithCancel(context.Background())
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := cfg.Dial(ctx)
		if err == nil {
			c.dials.Add(1)
			c.log.Debug("agent: connected", "node", cfg.Node)
		}
		return conn, err
	}
	c.tr = &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        16,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
		// Uploads wait for the agent's go-ahead; it answers at once.
		ExpectContinueTimeout: 10 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	c.once = &http.Transport{DialContext: dial, DisableKeepAlives: true, DisableCompression: true, ExpectContinueTimeout: 10 * time.Second}
	return c, nil
}

// Close drops the connections; calls in progress end with ErrUnavailable
// and the client cannot be used afterwards.
func (c *Client) Close() error {
	c.stop()
	c.tr.CloseIdleConnections()
	c.once.CloseIdleConnections()
	return nil
}

// base is where requests go; the host is a placeholder (Dial decides).
const base = "http://agent/v1/"

// callError is an error of the client's own: the agent could not be
// reached, or the caller's context ended first.
type callError struct {
	msg       string
	class     error
	cause     error
	transport bool // the request or answer was lost on the way
}

func (e *callError) Error() string   { return e.msg + ": " + e.class.Error() }
func (e *callError) Unwrap() []error { return []error{e.class, e.cause} }

func (c *Client) prefix() string {
	if c.cfg.Node != "" {
		return "node " + c.cfg.Node + ": agent"
	}
	return "agent"
}

// lost is the error of a call whose request or answer did not make it.
func (c *Client) lost(ctx context.Context, method string, err error) error {
	var ve *VersionError
	if errors.As(err, &ve) {
		return ve
	}
	switch {
	case c.life.Err() != nil:
		return &callError{msg: fmt.Sprintf("%s: %s: client closed", c.prefix(), method), class: virtplane.ErrUnavailable, cause: err}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &callError{msg: fmt.Sprintf("%s: %s: no answer before the deadline", c.prefix(), method), class: virtplane.ErrTimeout, cause: ctx.Err()}
	case ctx.Err() != nil:
		return &callError{msg: fmt.Sprintf("%s: %s: canceled", c.prefix(), method), class: virtplane.ErrCanceled, cause: ctx.Err()}
	}
	return &callError{msg: fmt.Sprintf("%s: %s: %v", c.prefix(), method, err), class: virtplane.ErrUnavailable, cause: err, transport: true}
}

// callContext bounds ctx by CallTimeout when it has no deadline (bounded)
// and ends it when the client closes.
func (c *Client) callContext(ctx context.Context, bounded bool) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok || !bounded {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout)
	}
	stop := context.AfterFunc(c.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// request builds a call with the protocol's headers.
func (c *Client) request(ctx context.Context, httpMethod, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, httpMethod, base+path, body)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: %s: %v", c.prefix(), path, err)
	}
	req.Header.Set(headerProtocol, fmt.Sprint(Protocol))
	if c.cfg.Version != "" {
		req.Header.Set(headerVersion, c.cfg.Version)
	}
	if d, ok := ctx.Deadline(); ok {
		req.Header.Set(headerTimeout, formatTimeout(d))
	}
	return req, nil
}

// roundTrip sends req and returns a 200 answer, or the error the agent or
// the way to it gave. A read (idempotent) may go on a connection kept
// open; a change goes on a new one. A kept connection can lead to an agent
// that died since it was last used: through SSH the node's sshd closes
// the channel some milliseconds after the agent's socket went away, and a
// request sent in between is lost in a way that looks the same as an
// agent dying while it worked on it. A read is simply sent again; a
// change could not tell, so it dials: a dead agent is then refused at
// once (and started again by a Dial that does that) and only an agent
// dying in the middle of the call leaves its outcome unknown.
func (c *Client) roundTrip(ctx context.Context, method string, req *http.Request, idempotent bool) (*http.Response, error) {
	if c.life.Err() != nil {
		return nil, c.lost(ctx, method, errors.New("closed"))
	}
	tr := c.once
	if idempotent {
		tr = c.tr
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, c.lost(ctx, method, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxRequestBytes))
	if err != nil {
		return nil, c.lost(ctx, method, err)
	}
	return nil, c.remote(method, resp.StatusCode, b)
}

// remote decodes an error answer.
func (c *Client) remote(method string, code int, b []byte) error {
	var we wireError
	if err := json.Unmarshal(b, &we); err != nil || we.Message == "" {
		return &callError{msg: fmt.Sprintf("%s: %s: answer %d: %.200q", c.prefix(), method, code, b), class: virtplane.ErrUnavailable, cause: err}
	}
	return c.decodeError(&we)
}

func (c *Client) decodeError(we *wireError) error {
	if we.Reason == reasonVersion {
		return &VersionError{Node: c.cfg.Node, AgentVersion: we.AgentVersion, AgentProtocol: we.AgentProtocol,
			ClientVersion: c.cfg.Version, ClientProtocol: Protocol}
	}
	return we.decode(c.cfg.Node)
}

// call makes a JSON call. An idempotent one is sent once more when the
// first attempt was lost on the way (a connection that dropped, an agent
// that restarted); others report that as ErrUnavailable.
func (c *Client) call(ctx context.Context, method string, idempotent bool, in, out any) error {
	ctx, cancel := c.callContext(ctx, true)
	defer cancel()
	body, err := json.Marshal(in)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: %s: encoding the request: %v", c.prefix(), method, err)
	}
	for attempt := 0; ; attempt++ {
		err := c.callOnce(ctx, method, idempotent, body, out)
		var ce *callError
		if err != nil && idempotent && attempt == 0 && errors.As(err, &ce) && ce.transport && ctx.Err() == nil {
			c.log.Info("agent: retrying a read after a lost connection", "node", c.cfg.Node, "method", method, "err", err)
			continue
		}
		return err
	}
}

func (c *Client) callOnce(ctx context.Context, method string, idempotent bool, body []byte, out any) error {
	req, err := c.request(ctx, http.MethodPost, method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.roundTrip(ctx, method, req, idempotent)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return c.lost(ctx, method, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &callError{msg: fmt.Sprintf("%s: %s: answer: %v", c.prefix(), method, err), class: virtplane.ErrUnavailable, cause: err}
	}
	return nil
}

// openStream starts a streamed call; the caller reads it with readStream
// and closes the body. bounded says whether CallTimeout applies.
func (c *Client) openStream(ctx context.Context, method string, bounded bool, in any) (*http.Response, context.Context, context.CancelFunc, error) {
	ctx, cancel := c.callContext(ctx, bounded)
	body, err := json.Marshal(in)
	if err != nil {
		cancel()
		return nil, nil, nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: %s: encoding the request: %v", c.prefix(), method, err)
	}
	req, err := c.request(ctx, http.MethodPost, method, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	// Streams are changes (a migration, a copy) or hold their connection
	// for long (events): each has its own.
	resp, err := c.roundTrip(ctx, method, req, false)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return resp, ctx, cancel, nil
}

// readStream reads the lines of a streamed answer, handing all but the
// last to line, and returns the outcome the last one carries. A stream
// that ends without its last line lost its connection: the outcome is
// unknown, ErrUnavailable.
func (c *Client) readStream(ctx context.Context, method string, body io.Reader, line func(streamLine)) error {
	r := bufio.NewReaderSize(body, 64<<10)
	dec := json.NewDecoder(r)
	for {
		var l streamLine
		err := dec.Decode(&l)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return c.lost(ctx, method, fmt.Errorf("stream ended without an outcome: %w", err))
		}
		if l.Done {
			if l.Error != nil {
				return c.decodeError(l.Error)
			}
			return nil
		}
		line(l)
	}
}

// Hello makes the version handshake: it returns the agent's version,
// protocol and capabilities, or a *VersionError (ErrConflict) naming both
// versions when the agent does not take this client's calls. The client
// keeps the capabilities to answer vmm.As and storage.As; the first
// capability question asks itself when Hello was not called.
func (c *Client) Hello(ctx context.Context) (Hello, error) {
	var h Hello
	if err := c.call(ctx, "hello", true, helloRequest{Version: c.cfg.Version, Protocol: Protocol}, &h); err != nil {
		return Hello{}, err
	}
	if !h.Accepted || !compatible(h.Version, h.Protocol, c.cfg.Version, Protocol) {
		return h, &VersionError{Node: c.cfg.Node, AgentVersion: h.Version, AgentProtocol: h.Protocol, ClientVersion: c.cfg.Version, ClientProtocol: Protocol}
	}
	c.hello.Store(&h)
	c.helloDials.Store(c.dials.Load())
	c.mu.Lock()
	c.poolCaps = h.Capabilities.Pools
	if c.poolCaps == nil {
		c.poolCaps = map[string][]string{}
	}
	var lost []PoolSpec
	for name, spec := range c.opened {
		if _, ok := c.poolCaps[name]; !ok {
			lost = append(lost, spec)
		}
	}
	c.mu.Unlock()
	// Pools this client opened that the agent no longer has (it
	// restarted) are opened again, so that their capabilities are known.
	for _, spec := range lost {
		if err := c.openPool(ctx, spec); err != nil {
			c.log.Warn("agent: opening a pool the agent lost", "node", c.cfg.Node, "pool", spec.Name, "err", err)
		}
	}
	return h, nil
}

// capabilities returns what the last Hello learned, making the handshake
// when none was made or the client connected anew since (the agent may have
// restarted with other drivers); nil when the agent was never reached.
func (c *Client) capabilities() *Capabilities {
	h := c.hello.Load()
	if h != nil && c.dials.Load() == c.helloDials.Load() {
		return &h.Capabilities
	}
	// Bounded below CallTimeout: a capability question should not hold
	// its caller long when the node is away.
	ctx, cancel := context.WithTimeout(c.life, min(c.cfg.CallTimeout, capabilityTimeout))
	defer cancel()
	fresh, err := c.Hello(ctx)
	if err != nil {
		c.log.Warn("agent: capabilities not refreshed: handshake failed", "node", c.cfg.Node, "err", err)
		if h != nil {
			return &h.Capabilities // what the agent had; calls fail on their own if it changed
		}
		return nil
	}
	return &fresh.Capabilities
}

// capabilityTimeout bounds the handshake a capability question makes.
const capabilityTimeout = 15 * time.Second

// bodyCloser ends a call's context when its answer's body is closed.
type bodyCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b bodyCloser) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// Extra calls a service mounted on the agent under /v1/x/{service}/: path
// is the service's own ("/status"). The answer is the service's, whatever
// its status; the caller closes its body. Errors are those of the way
// there (ErrUnavailable, ErrTimeout) and the agent's refusals (no such
// service: ErrNotImplemented; another version: VersionError).
func (c *Client) Extra(ctx context.Context, service, httpMethod, path string, body io.Reader) (*http.Response, error) {
	ctx, cancel := c.callContext(ctx, true)
	req, err := c.request(ctx, httpMethod, "x/"+service+path, body)
	if err != nil {
		cancel()
		return nil, err
	}
	tr := c.once // see roundTrip
	if httpMethod == http.MethodGet || httpMethod == http.MethodHead {
		tr = c.tr
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		cancel()
		return nil, c.lost(ctx, "x/"+service, err)
	}
	if resp.Header.Get(headerRefused) != "" {
		// The agent's own refusal, before the service ran.
		defer resp.Body.Close()
		defer cancel()
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxRequestBytes))
		if err != nil {
			return nil, c.lost(ctx, "x/"+service, err)
		}
		return nil, c.remote("x/"+service, resp.StatusCode, b)
	}
	resp.Body = bodyCloser{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

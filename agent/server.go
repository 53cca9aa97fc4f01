package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// Node is what one node offers a controller. Every part may be missing: a
// call to a missing part is ErrNotImplemented.
type Node struct {
	// VMM is the node's hypervisor driver (libvirt, LXD).
	VMM vmm.Driver
	// Pools are the storage pools the node has from the start, by name.
	// The controller opens more with Client.OpenPool.
	Pools map[string]storage.Pool
	// PoolOpeners open pools by driver name when the controller asks
	// (Client.OpenPool): the binary that builds the agent registers the
	// drivers it has (lvm, ceph, san); "file" is registered unless given.
	PoolOpeners map[string]PoolOpener
	// Ports are the node's VM network ports.
	Ports netport.Ports
	// Exec runs commands on the node (storage.LocalExecutor on a real node).
	Exec storage.Executor
	// UploadDir is the absolute directory that uploads land in, and only
	// there; empty refuses uploads. It is created when missing.
	UploadDir string
	// Facts reports the node's capacity and identity; nil reads them from
	// this host (ReadHostFacts). Pools the function leaves out are filled
	// in from the node's pools.
	Facts func(ctx context.Context) (Facts, error)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Node Node
	// Version is the agent's software version, compared with the
	// controller's on every request (empty: not compared).
	Version string
	// Logger receives what the agent does not answer to a caller; the
	// default discards.
	Logger *slog.Logger
	// Extra are further services, each mounted under /v1/x/{name}/ with
	// the prefix stripped (the HA agent, the BGP speaker). They get the
	// same checks as every call: version, deadline, cancel on disconnect.
	Extra map[string]http.Handler
}

// Server serves one node's drivers to a remote controller over HTTP/1.1 on
// the listeners handed to Serve (a unix socket that the controller reaches
// through its SSH connection). It is also an http.Handler.
type Server struct {
	cfg     ServerConfig
	node    Node
	log     *slog.Logger
	hs      *http.Server
	unary   map[string]unaryMethod
	streams map[string]streamMethod
	raw     map[string]rawMethod
	extra   map[string]http.Handler
	openers map[string]PoolOpener

	poolsMu sync.RWMutex
	pools   map[string]*openPool
	openMu  sync.Mutex // serialises OpenPool, which does I/O
}

// unaryMethod answers a JSON request with a JSON value.
type unaryMethod func(ctx context.Context, body []byte) (any, error)

// streamMethod answers with a stream of JSON lines.
type streamMethod func(ctx context.Context, body []byte, st *stream) error

// rawMethod reads the request and writes the answer itself (exec).
type rawMethod func(ctx context.Context, w http.ResponseWriter, r *http.Request)

var extraNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// NewServer checks cfg and returns a server; it does not listen yet.
func NewServer(cfg ServerConfig) (*Server, error) {
	s := &Server{cfg: cfg, node: cfg.Node, log: cfg.Logger, unary: map[string]unaryMethod{},
		streams: map[string]streamMethod{}, raw: map[string]rawMethod{}, extra: map[string]http.Handler{},
		openers: map[string]PoolOpener{"file": FileOpener}, pools: map[string]*openPool{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for name, p := range cfg.Node.Pools {
		if err := storage.ValidateName("agent: pool name", name); err != nil {
			return nil, err
		}
		if p == nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: pool %q is nil", name)
		}
		s.pools[name] = &openPool{pool: p}
	}
	for driver, open := range cfg.Node.PoolOpeners {
		if err := storage.ValidateName("agent: pool driver", driver); err != nil {
			return nil, err
		}
		if open == nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: pool opener %q is nil", driver)
		}
		s.openers[driver] = open
	}
	if err := s.prepareUploads(); err != nil {
		return nil, err
	}
	for name, h := range cfg.Extra {
		if !extraNameRE.MatchString(name) {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: extra service name %q: want 1-63 of [a-z0-9-]", name)
		}
		if h == nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: extra service %q has no handler", name)
		}
		s.extra[name] = http.StripPrefix("/v1/x/"+name, h)
	}
	s.registerVMM()
	s.registerStorage()
	s.registerPorts()
	s.registerExec()
	s.registerFiles()
	s.registerFacts()
	s.hs = &http.Server{
		Handler: s,
		// No write or idle timeouts: event streams and migrations last as
		// long as their callers want; every call carries its own deadline.
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Serve answers the connections l accepts until Close or Shutdown; it
// returns nil then, and the listener's error otherwise. It may run on
// several listeners at once.
func (s *Server) Serve(l net.Listener) error {
	err := s.hs.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close closes the listeners and every connection at once: calls in
// progress end with their connection, and their work is canceled.
func (s *Server) Close() error { return s.hs.Close() }

// Shutdown stops accepting and waits, until ctx ends, for the calls in
// progress (event streams end only with ctx).
func (s *Server) Shutdown(ctx context.Context) error { return s.hs.Shutdown(ctx) }

func (s *Server) addUnary(name string, m unaryMethod)   { s.unary[name] = m }
func (s *Server) addStream(name string, m streamMethod) { s.streams[name] = m }
func (s *Server) addRaw(name string, m rawMethod)       { s.raw[name] = m }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(hw http.ResponseWriter, r *http.Request) {
	w := &responseWriter{ResponseWriter: hw}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("agent: panic in a call", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			if !w.wrote {
				writeError(w, fmt.Errorf("agent: internal error in %s", r.URL.Path))
			}
		}
	}()
	if r.URL.Path == "/v1/hello" {
		s.serveHello(w, r)
		return
	}
	if err := s.checkCaller(r); err != nil {
		writeWireError(w, http.StatusConflict, err)
		return
	}
	ctx, cancel, err := requestContext(r)
	if err != nil {
		writeError(w, err)
		return
	}
	defer cancel()
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeError(w, virtplane.Errorf(virtplane.ErrNotImplemented, "agent: no route %s", r.URL.Path))
		return
	}
	if svc, ok := strings.CutPrefix(rest, "x/"); ok {
		name, _, _ := strings.Cut(svc, "/")
		h, found := s.extra[name]
		if !found {
			writeError(w, virtplane.Errorf(virtplane.ErrNotImplemented, "agent: no extra service %q", name))
			return
		}
		h.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	object, method, _ := strings.Cut(rest, "/")
	if object == "files" && r.Method == http.MethodPut {
		s.upload(ctx, w, r, method)
		return
	}
	key := object + "/" + method
	if r.Method != http.MethodPost {
		writeError(w, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: %s %s: calls are POST", r.Method, r.URL.Path))
		return
	}
	if m, ok := s.raw[key]; ok {
		m(ctx, w, r)
		return
	}
	unary, isUnary := s.unary[key]
	streamed, isStream := s.streams[key]
	if !isUnary && !isStream {
		writeError(w, virtplane.Errorf(virtplane.ErrNotImplemented, "agent: no method %q in protocol %d", key, Protocol))
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	if isStream {
		st := &stream{w: w}
		err := streamed(ctx, body, st)
		st.finish(err)
		return
	}
	out, err := unary(ctx, body)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// checkCaller refuses a request of another protocol or version.
func (s *Server) checkCaller(r *http.Request) *wireError {
	p, err := parseProtocol(r.Header.Get(headerProtocol))
	version := r.Header.Get(headerVersion)
	if err == nil && compatible(s.cfg.Version, Protocol, version, p) {
		return nil
	}
	return &wireError{Class: className(virtplane.ErrConflict), Reason: reasonVersion,
		Message:      (&VersionError{AgentVersion: s.cfg.Version, AgentProtocol: Protocol, ClientVersion: version, ClientProtocol: p}).Error(),
		AgentVersion: s.cfg.Version, AgentProtocol: Protocol}
}

// requestContext is the request's context (canceled when the connection
// drops) bounded by the caller's deadline.
func requestContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	d, ok, err := parseTimeout(r.Header.Get(headerTimeout))
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		ctx, cancel := context.WithCancel(r.Context())
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, nil
}

// readBody reads a JSON request body of at most MaxRequestBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: request body over %d bytes", MaxRequestBytes)
	case err != nil:
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "agent: reading the request: %v", err)
	}
	return b, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, fmt.Errorf("agent: encoding the answer: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, err error) {
	writeWireError(w, status(virtplane.Class(err)), encodeError(err))
}

func writeWireError(w http.ResponseWriter, code int, we *wireError) {
	w.Header().Set(headerRefused, "1")
	writeJSON(w, code, we)
}

// responseWriter records whether the answer has begun.
type responseWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *responseWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unary adapts a typed method to the wire: the request decoded strictly
// into In, the answer encoded from Out.
func unary[In, Out any](f func(ctx context.Context, in In) (Out, error)) unaryMethod {
	return func(ctx context.Context, body []byte) (any, error) {
		var in In
		if err := decodeJSON(body, &in); err != nil {
			return nil, err
		}
		return f(ctx, in)
	}
}

// done is the answer of a method that returns only an error.
type done struct{}

// streamLine is one line of a streamed answer: an event, a progress
// report, or the last line with the outcome.
type streamLine struct {
	Event    *vmm.Event             `json:"event,omitempty"`
	Progress *vmm.MigrationProgress `json:"progress,omitempty"`
	Copied   *copied                `json:"copied,omitempty"`
	Done     bool                   `json:"done,omitempty"`
	Error    *wireError             `json:"error,omitempty"`
}

// copied is a disk copy's progress (vmm.DiskCopier).
type copied struct{ Done, Total int64 }

// stream writes a streamed answer: the header once the method has begun
// (Start), one JSON line per Send, and a last line with the outcome. A
// method that fails before it began answers like a unary one.
type stream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	started bool
	broken  error
}

// Start sends the header: the caller learns that the method runs (an
// event subscription is in place).
func (st *stream) Start() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.startLocked()
}

func (st *stream) startLocked() {
	if st.started {
		return
	}
	st.started = true
	st.w.Header().Set("Content-Type", "application/x-ndjson")
	st.w.WriteHeader(http.StatusOK)
	st.flushLocked()
}

func (st *stream) flushLocked() {
	if st.broken == nil {
		if err := http.NewResponseController(st.w).Flush(); err != nil {
			st.broken = err
		}
	}
}

// Send writes one line; an error means the caller went away.
func (st *stream) Send(l streamLine) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.startLocked()
	if st.broken != nil {
		return st.broken
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := st.w.Write(append(b, '\n')); err != nil {
		st.broken = err
		return err
	}
	st.flushLocked()
	return st.broken
}

func (st *stream) finish(err error) {
	st.mu.Lock()
	started := st.started
	st.mu.Unlock()
	if !started {
		if err != nil {
			writeError(st.w, err)
			return
		}
		st.Start()
	}
	last := streamLine{Done: true}
	if err != nil {
		last.Error = encodeError(err)
	}
	_ = st.Send(last)
}

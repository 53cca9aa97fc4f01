package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/console"
	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/metrics"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/network/ipam/dnsbl"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/vmm"
)

// Config holds what the API serves.
type Config struct {
	Store   store.Store
	Tasks   *tasks.Engine
	Auth    *auth.Service
	Events  *events.Bus
	Metrics *metrics.Metrics
	// Version is shown in the OpenAPI document.
	Version string
	// Backend answers what the API asks the nodes at once (guest agent,
	// rebalance plans); nil answers ErrNotImplemented.
	Backend Backend
	// Console opens VMs' consoles for the console proxy; nil refuses
	// console tickets with ErrNotImplemented.
	Console ConsoleOpener
	// CheckOverride checks a domain template's XML override (libvirt's
	// CheckOverride with the daemon's storage directories); nil refuses
	// overrides.
	CheckOverride func(ctx context.Context, xml string) error
	// IPAM keeps the pools' allocations; pools made through the API are
	// created there too. Nil keeps pools as records only.
	IPAM *ipam.Manager
	// Invalidate is told when a cluster's placement inputs (settings,
	// nodes) change.
	Invalidate func(clusterID string)
	// Nodes reads node addresses and prepares new nodes; nil reads none.
	Nodes NodeAdmin
	// Storages checks cluster storages against the drivers; nil accepts
	// file storages only.
	Storages StorageAdmin
	// ConsoleTicketTTL is how long a console ticket waits to be used;
	// default console.DefaultTTL.
	ConsoleTicketTTL time.Duration
	// Scripts and Notify serve the script catalog and runs, and the
	// notifications; nil answers their endpoints with ErrNotImplemented.
	Scripts *scriptrun.Service
	Notify  *notify.Service
	// DNSBL checks pools' addresses against DNS blocklists; nil (no zones
	// configured) answers the check with ErrNotImplemented.
	DNSBL *dnsbl.Checker
}

// NodeAdmin is what adding and removing nodes needs from the daemon: the
// node kinds it has. Handlers never look at what kind a node is.
type NodeAdmin interface {
	// ParseAddress reads a node address; the error names field.
	ParseAddress(field, raw string) (node.Address, error)
	// Prepare makes a new node ready (connect, install the agent) and
	// reads its facts; on error nothing is left on the node.
	Prepare(ctx context.Context, name string, addr node.Address, virtType string, cred node.Credentials) (node.Facts, error)
	// Forget is told that a node was removed.
	Forget(ctx context.Context, n model.Node)
}

// Backend is what the API asks the nodes and the scheduler at once,
// outside tasks (flow.Flow implements it).
type Backend interface {
	GuestInterfaces(ctx context.Context, vmID string) ([]vmm.GuestInterface, error)
	GuestExec(ctx context.Context, vmID string, argv []string) (vmm.ExecResult, error)
	SetGuestPassword(ctx context.Context, vmID, user, password string) error
	RebalancePlan(ctx context.Context, clusterID string, threshold float64, maxMoves int) (scheduler.RebalancePlan, error)
}

// Server is the HTTP API.
type Server struct {
	cfg     Config
	st      store.Store
	tickets *console.Tickets
	mux     *http.ServeMux
	api     huma.API
	// auditFailures counts the audit entries that could not be stored.
	auditFailures prometheus.Counter
}

type principalKey struct{}

// New builds the API.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Tasks == nil || cfg.Auth == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "api: Store, Tasks and Auth are required")
	}
	if cfg.Events == nil {
		cfg.Events = events.NewBus()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(cfg.Store)
	}
	if cfg.Invalidate == nil {
		cfg.Invalidate = func(string) {}
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	s := &Server{cfg: cfg, st: cfg.Store, mux: http.NewServeMux(), tickets: console.NewTickets(cfg.Store, cfg.ConsoleTicketTTL)}
	hc := huma.DefaultConfig("virtplane", cfg.Version)
	hc.Info.Description = "The reference control plane of virtplane. Changes are tasks: a change answers 202 with a task to poll (GET /v1/tasks/{id}) or to follow on the event stream (GET /v1/events, WebSocket). Authenticate with `Authorization: Bearer <token>`; get a token with POST /v1/login."
	hc.DocsPath = "" // the docs page is rendered here, without a CDN
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "an API token (vpt_...)"},
	}
	hc.Security = []map[string][]string{{"bearer": {}}}
	s.api = humago.New(s.mux, hc)
	s.api.UseMiddleware(s.observe, s.authenticate, s.audit)
	s.registerUsers()
	s.registerQuotas()
	s.registerAudit()
	s.registerClusters()
	s.registerStorageDrivers()
	s.registerNodes()
	s.registerPools()
	s.registerDNSBL()
	s.registerImages()
	s.registerVMs()
	s.registerTasks()
	s.registerTemplates()
	s.registerPlacement()
	s.registerGuest()
	s.registerConsole()
	s.registerScripts()
	s.registerNotifications()
	s.mux.HandleFunc("GET /docs", s.docs)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/docs", http.StatusFound)
	})
	s.mux.HandleFunc("GET /v1/events", s.eventStream)
	s.mux.Handle("GET /metrics", cfg.Metrics.Handler())
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// OpenAPI returns the API's OpenAPI document.
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

func (s *Server) observe(ctx huma.Context, next func(huma.Context)) {
	start := time.Now()
	rec := &statusRecorder{humaContext: ctx}
	next(rec)
	s.cfg.Metrics.ObserveRequest(ctx.Operation().OperationID, rec.status, time.Since(start))
}

// statusRecorder keeps the status the handler set: huma.WithValue (in
// authenticate) gives the handler a copy of humago's context, whose
// status the original never sees (every request was counted as code 0).
// It has no WithContext method, so later wrappers delegate to it.
type statusRecorder struct {
	humaContext
	status int
}

// humaContext names the embedded context (huma.Context has a method Context).
type humaContext = huma.Context

func (r *statusRecorder) SetStatus(code int) {
	r.status = code
	r.humaContext.SetStatus(code)
}

func isPublic(op *huma.Operation) bool {
	return op.Metadata != nil && op.Metadata["public"] == true
}

func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	if isPublic(ctx.Operation()) {
		next(ctx)
		return
	}
	secret, ok := strings.CutPrefix(ctx.Header("Authorization"), "Bearer ")
	if !ok {
		_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "missing bearer token")
		return
	}
	p, err := s.cfg.Auth.Verify(ctx.Context(), strings.TrimSpace(secret))
	if err != nil {
		_ = huma.WriteErr(s.api, ctx, statusOf(err), err.Error())
		return
	}
	next(huma.WithValue(ctx, principalKey{}, p))
}

func principal(ctx context.Context) auth.Principal {
	p, _ := ctx.Value(principalKey{}).(auth.Principal)
	return p
}

// requireAdmin refuses non-admins.
func requireAdmin(ctx context.Context) error {
	if !principal(ctx).Admin() {
		return virtplane.Errorf(virtplane.ErrPermissionDenied, "admins only")
	}
	return nil
}

// Page is one page of a list; pass Next as ?after= for the next page.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty" doc:"cursor of the next page; empty on the last"`
}

// PageInput is the paging query of a list.
type PageInput struct {
	After string `query:"after" doc:"cursor from the previous page"`
	Limit int    `query:"limit" minimum:"0" maximum:"1000" default:"100"`
}

func decode[T any](o store.Object) (T, error) {
	var v T
	if err := json.Unmarshal(o.Data, &v); err != nil {
		return v, virtplane.Errorf(virtplane.ErrUnavailable, "stored %s %s is unreadable: %v", o.Kind, o.ID, err)
	}
	return v, nil
}

func listObjects[T any](ctx context.Context, r store.Reader, kind store.Kind, opts store.ListOptions, keep func(T) bool) (Page[T], error) {
	if opts.Limit <= 0 {
		opts.Limit = 100
	}
	out := Page[T]{Items: []T{}}
	objs, err := r.ListObjects(ctx, kind, opts)
	if err != nil {
		return out, err
	}
	for _, o := range objs {
		v, err := decode[T](o)
		if err != nil {
			return out, err
		}
		if keep == nil || keep(v) {
			out.Items = append(out.Items, v)
		}
	}
	if len(objs) == opts.Limit {
		out.Next = objs[len(objs)-1].ID
	}
	return out, nil
}

// getObject reads an object; a missing one is reported against the field
// that named it.
func getObject[T any](ctx context.Context, r store.Reader, kind store.Kind, id, location string) (T, store.Object, error) {
	var zero T
	o, err := r.GetObject(ctx, kind, id)
	if err != nil {
		return zero, o, field(location, err)
	}
	v, err := decode[T](o)
	return v, o, err
}

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "encode %T: %v", v, err)
	}
	return b, nil
}

func (s *Server) publish(typ, action, id, owner, state string) {
	s.cfg.Events.Publish(events.Event{Type: typ, Action: action, ID: id, Owner: owner, State: state})
}

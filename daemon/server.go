package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/metrics"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
)

// Config configures a daemon.
type Config struct {
	Store store.Store
	// Instance names this daemon among those sharing a store; stable across
	// restarts. Default: the host name.
	Instance string
	// Workers is how many tasks run at once.
	Workers int
	Logger  *slog.Logger
	Version string
	// Flow configures the VM task handlers (backends of the nodes).
	Flow flow.Config
}

// Server is one daemon: store, task engine, API, events and metrics.
type Server struct {
	cfg     Config
	Auth    *auth.Service
	Events  *events.Bus
	Metrics *metrics.Metrics
	Tasks   *tasks.Engine
	Flow    *flow.Flow
	API     *api.Server
}

// New wires a daemon over a store.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "daemon: Store is required")
	}
	if cfg.Instance == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "daemon: Instance is empty and the host name is unknown: %v", err)
		}
		cfg.Instance = h
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, Auth: auth.New(cfg.Store), Events: events.NewBus(), Metrics: metrics.New(cfg.Store)}
	eng, err := tasks.New(tasks.Config{
		Store: cfg.Store, Instance: cfg.Instance, Workers: cfg.Workers, Logger: cfg.Logger,
		OnChange: func(t store.Task) {
			s.Metrics.ObserveTask(t)
			s.Events.Publish(events.Event{Type: "task", Action: "progress", ID: t.ID, Owner: t.Owner,
				State: string(t.State), Progress: t.Progress, Message: t.Message, Target: t.Target})
		},
	})
	if err != nil {
		return nil, err
	}
	s.Tasks = eng
	fcfg := cfg.Flow
	fcfg.Store = cfg.Store
	fcfg.Events = s.Events
	if s.Flow, err = flow.New(fcfg); err != nil {
		return nil, err
	}
	s.Flow.Register(eng)
	s.API, err = api.New(api.Config{
		Store: cfg.Store, Tasks: eng, Auth: s.Auth, Events: s.Events, Metrics: s.Metrics,
		Version: cfg.Version, Console: s.Flow.Console,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Handler is the daemon's HTTP handler.
func (s *Server) Handler() http.Handler { return s.API.Handler() }

// Run runs the task engine until ctx ends (tasks left unfinished by an
// earlier run are rolled back first).
func (s *Server) Run(ctx context.Context) error { return s.Tasks.Run(ctx) }

// Bootstrap makes sure an admin can sign in: when the store has no user it
// creates the admin account "admin" with password (random when empty) and
// returns a fresh token for it; with users present it returns "".
func (s *Server) Bootstrap(ctx context.Context, password string) (token string, err error) {
	n, err := s.cfg.Store.CountObjects(ctx, store.KindUser, store.ListOptions{})
	if err != nil || n > 0 {
		return "", err
	}
	if password == "" {
		password = store.NewID()
	}
	u, err := s.Auth.CreateUser(ctx, "admin", password, model.RoleAdmin)
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return "", nil // another daemon bootstrapped at the same time
	}
	if err != nil {
		return "", err
	}
	token, _, err = s.Auth.IssueToken(ctx, u.ID, "bootstrap", 0)
	return token, err
}

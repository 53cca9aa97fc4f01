package scriptrun

import (
	"context"
	"log/slog"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/storage"
)

// Notifier records notifications and mails in a transaction (notify.Service).
type Notifier interface {
	EventTx(ctx context.Context, tx store.Tx, e notify.Event) error
	MailTx(ctx context.Context, tx store.Tx, m notify.Mail) (string, error)
	// Mails reports whether mails can be sent at all (an SMTP relay).
	Mails() bool
	Wake()
}

// Config configures a Service.
type Config struct {
	Store store.Store
	Tasks *tasks.Engine
	// NodeExecutor runs commands on a node (the daemon's storage command
	// executor: SSH for ssh:// nodes, this host for the local node, later
	// the node agent); nil refuses runs on nodes.
	NodeExecutor func(ctx context.Context, n model.Node) (storage.Executor, error)
	// Notify takes script results and result mails; nil: neither.
	Notify Notifier
	// VMUser logs in to VMs (default root).
	VMUser string
	// NodeLogin gives the files Ansible reaches an ssh:// node with: the
	// daemon's key and a known_hosts file holding the node's pinned host
	// key; nil refuses Ansible playbooks on nodes.
	NodeLogin func(ctx context.Context, n model.Node) (NodeLogin, error)
	// DefaultTimeout bounds a run that names no timeout (default 30 min).
	DefaultTimeout time.Duration
	// BootWait is how long a run after a VM's create waits for the VM's
	// SSH server to answer (default 10 min).
	BootWait time.Duration
	// Parallel bounds the targets a run works on at once (default 8).
	Parallel int
	// AnsiblePlaybook is the ansible-playbook binary (default from PATH).
	AnsiblePlaybook string
	Logger          *slog.Logger
}

// NodeLogin is how OpenSSH clients (Ansible) log in to a node.
type NodeLogin struct {
	PrivateKeyFile, KnownHostsFile string
}

// Service is the daemon's script catalog, variables and runs.
type Service struct {
	cfg  Config
	st   store.Store
	log  *slog.Logger
	keys *vmKeys
}

// The task kind of a run.
const KindScriptRun = "script.run"

// New returns a Service; Register installs its task handler.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Tasks == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "scriptrun: Store and Tasks are required")
	}
	if cfg.VMUser == "" {
		cfg.VMUser = "root"
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 30 * time.Minute
	}
	if cfg.BootWait <= 0 {
		cfg.BootWait = 10 * time.Minute
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, st: cfg.Store, log: cfg.Logger, keys: &vmKeys{st: cfg.Store}}, nil
}

// Register installs the run handler on the engine.
func (s *Service) Register(e *tasks.Engine) {
	e.Handle(KindScriptRun, tasks.Handler{Run: s.runTask, Finish: s.finishRun})
}

// VMScriptKey returns the public key a new VM authorizes for script runs.
func (s *Service) VMScriptKey(ctx context.Context, vmID string) (string, error) {
	return s.keys.PublicKey(ctx, vmID)
}

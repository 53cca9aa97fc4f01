package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/metrics"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/network/ipam"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/opener"
	"github.com/virtplane/virtplane/vmm"
)

// Config configures a daemon.
type Config struct {
	Store store.Store
	// Instance names this daemon among those sharing a store; stable across
	// restarts. Default: the host name.
	Instance string
	// Workers is how many tasks run at once.
	Workers int
	// TaskLease is how long the daemons sharing the store wait for one that
	// stopped before they take over its tasks and the placement lead
	// (default 30s, tasks.Config.Lease).
	TaskLease time.Duration
	Logger    *slog.Logger
	Version   string
	// DataDir is where the daemon keeps files (the SQLite database lives
	// there too when the store is SQLite).
	DataDir string
	// NodeKinds adds node kinds to the built-in ones (sim, local,
	// qemu+unix, ssh), or replaces one of them by name.
	NodeKinds []node.Kind
	// StorageDrivers adds storage drivers to those of storage/opener
	// (file, lvm, san-lvm, san-iscsi, ceph), or replaces one by name. They
	// open the local storages of nodes on this host and every cluster's
	// shared storages; agent nodes open theirs with the agent's own.
	StorageDrivers []opener.Driver
	// LocalDriver opens the hypervisor of a node with address "local" (the
	// local libvirtd); nil refuses such nodes with ErrNotImplemented.
	LocalDriver func(ctx context.Context) (vmm.Driver, error)
	// LocalLXD opens the hypervisor of a node with address "local" in an
	// lxd cluster (the local LXD); nil refuses such nodes.
	LocalLXD func(ctx context.Context) (vmm.Driver, error)
	// LocalStorage opens the storage pool of a node with address "local".
	LocalStorage func(ctx context.Context) (storage.Pool, error)
	// LocalPorts opens the network ports of a node with address "local"
	// (netport.NewKernelHost over this host's kernel).
	LocalPorts func(ctx context.Context) (netport.Ports, error)
	// LocalLibvirtSocket is the socket of the libvirtd LocalDriver opens
	// (default /run/libvirt/libvirt-sock): the address other libvirtds on
	// this host migrate to the local node by.
	LocalLibvirtSocket string
	// LocalMigrationAddress is the IP the local libvirtd takes live
	// migrations on, as migration_address of a qemu+unix node (empty:
	// libvirt's choice, the host name).
	LocalMigrationAddress string
	// SSHKeyFile is the private key (PEM) the daemon logs in to ssh://
	// nodes with; default: one it makes in DataDir (ssh/id_ed25519). Adding
	// a node installs its public half there.
	SSHKeyFile string
	// SSHKnownHostsFile is an OpenSSH known_hosts file for ssh:// nodes
	// recorded without a pinned host key; nodes added through the API have
	// theirs pinned.
	SSHKnownHostsFile string
	// AgentBinary is the virtplaned binary the daemon installs and runs as
	// the node agent on ssh:// nodes (the reference daemon: its own
	// executable); empty refuses ssh:// nodes.
	AgentBinary string
	// AgentVersion is the version AgentBinary reports (empty: asked of the
	// binary, `virtplaned version`); the daemon replaces an agent that
	// reports another.
	AgentVersion string
	// SimStore is where simulated nodes (address "sim") keep their machines,
	// volumes and ports; default Store. A store of their own keeps their
	// writes off the daemon's, as real nodes keep their state on their own disks.
	SimStore store.Store
	// DomainType is the libvirt domain type of the VMs on the libvirt
	// nodes the daemon opens itself ("kvm" or "qemu"); empty lets each
	// node's driver detect it (vmm/libvirt DetectDomainType).
	DomainType string
	// SimInMemory makes simulated nodes keep nothing durable (SimStore is
	// not used): they forget their machines when the daemon stops. For
	// measuring the daemon alone, without the nodes' own bookkeeping.
	SimInMemory bool
	// SimLatency makes the hypervisor of simulated nodes take this long
	// for a call of each method named (vmm method names: "CopyDisk",
	// "Migrate", ...): a slow hypervisor for load tests and demos, and
	// for the crash tests that kill the daemon in the middle of a call.
	SimLatency map[string]time.Duration
	// ConsoleDial reaches a node's console port for the console proxy;
	// default: the node's own dial (node.Backend.Dial; a kind without one
	// has no console).
	ConsoleDial ConsoleDialer
	// ConsoleTicketTTL is how long a console ticket waits to be used;
	// default console.DefaultTTL (30 s).
	ConsoleTicketTTL time.Duration
	// DemoImage is a bootable raw disk image (hack/env/demo.sh builds one)
	// that SetupFirstNode registers and imports as the local node's first
	// OS image; without it the first image is an empty disk.
	DemoImage string
	// OverrideDiskRoots are storage directories, beyond the data
	// directory and the clusters' file storages, that disks of template
	// overrides may come from.
	OverrideDiskRoots []string
	// Directory, when set, signs in directory users (LDAP, FreeIPA) after
	// the local accounts, with DirectoryRoles; every DirectorySync
	// (default 1m) the accounts of users gone from it are disabled
	// (directory.go).
	Directory      auth.Directory
	DirectoryRoles auth.LDAPRoles
	DirectorySync  time.Duration
	// Scripts and Notify configure script runs and notifications (scripts.go).
	Scripts ScriptsConfig
	Notify  NotifyConfig
	// DNSBL configures the DNS blocklist check of pools' addresses
	// (dnsbl.go); without zones the check answers ErrNotImplemented.
	DNSBL DNSBLConfig
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
	IPAM    *ipam.Manager
	Scripts *scriptrun.Service
	Notify  *notify.Service
	watch   *events.Subscription // the events Notify turns into notifications

	kinds   *node.Kinds
	storage *storageDrivers
	mu      sync.Mutex
	// backends are the opened nodes by node ID.
	backends map[string]openedBackend

	consoleDial ConsoleDialer

	agentBin *agentBinary // nil: no ssh:// nodes
	keyOnce  sync.Once
	key      sshKey
	keyErr   error
}

// SetupFirstNode creates, on a fresh store, the cluster "default" with one
// node at address (LocalAddress: this host's libvirtd; SimAddress: a
// simulated node), its capacity read from the node, an IP pool of
// documentation addresses and an image record, so that a first VM can be
// created right away.
func (s *Server) SetupFirstNode(ctx context.Context, address string) error {
	n, err := s.cfg.Store.CountObjects(ctx, store.KindCluster, store.ListOptions{})
	if err != nil || n > 0 {
		return err
	}
	c := model.Cluster{ID: store.NewID(), Name: "default", VirtType: model.VirtKVM, Strategy: model.StrategyEven,
		CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge", Storages: []model.StorageRef{}, Created: time.Now().UTC()}
	addr, err := s.kinds.Parse("address", address)
	if err != nil {
		return err
	}
	facts, err := s.kinds.Prepare(ctx, address+"1", addr, c.VirtType, node.Credentials{})
	if err != nil {
		return err
	}
	first := model.Node{ID: store.NewID(), ClusterID: c.ID, Name: address + "1", Address: addr.Raw, State: model.NodeActive,
		Cores: facts.Cores, MemoryMiB: facts.MemoryMiB, DiskGiB: facts.DiskGiB, Created: time.Now().UTC()}
	rng, gw, excluded := defaultPoolBlock(agent.HostNetworks())
	pool := model.IPPool{ID: store.NewID(), Name: "default", ClusterIDs: []string{c.ID},
		Blocks: []model.IPBlock{{ID: "b1", Range: rng, Gateway: gw, Family: "ipv4", Excluded: excluded}}, Created: time.Now().UTC()}
	img := model.Image{ID: store.NewID(), Name: "debian-12", OSType: "linux", Source: "/var/lib/virtplane/images/debian-12.qcow2", Format: "qcow2", State: model.ImageRegistered, Created: time.Now().UTC()}
	b, err := s.Backend(ctx, first, c)
	if err != nil {
		return err
	}
	demo := !b.Simulated && s.cfg.DemoImage != ""
	if demo {
		// The demo image boots: a first VM shows its banner on the console.
		// It is imported by a task once the records exist.
		img.Name, img.Source, img.Format = "demo", s.cfg.DemoImage, "raw"
	}
	if !b.Simulated && b.OwnPool != nil && !demo {
		// Without the demo image, the first image is an empty disk, enough
		// for QEMU to run a VM (it boots into the firmware). Import real
		// images into the node's pool under the name flow.ImageVolume(id).
		img.Name, img.Source, img.SizeMiB = "blank", "", 1024
		img.State, img.Nodes = model.ImageReady, []string{first.ID}
		pool, err := b.OwnPool(ctx)
		if err != nil {
			return err
		}
		if _, err := pool.Create(ctx, storage.VolumeSpec{Name: flow.ImageVolume(img.ID), Size: 1 << 30, Format: storage.FormatQcow2}); err != nil {
			return err
		}
	}
	if s.IPAM != nil {
		blk, err := ipam.ParseBlock(ipam.BlockSpec{ID: "b1", Range: rng, Gateway: gw, Excluded: excluded})
		if err != nil {
			return err
		}
		if _, err := s.IPAM.CreatePool(ctx, ipam.Pool{ID: pool.ID, Clusters: pool.ClusterIDs, Blocks: []ipam.Block{blk}}); err != nil {
			return err
		}
	}
	err = s.cfg.Store.Update(ctx, func(tx store.Tx) error {
		for _, o := range []struct {
			kind         store.Kind
			id, name, pa string
			v            any
		}{{store.KindCluster, c.ID, c.Name, "", c}, {store.KindNode, first.ID, first.Name, c.ID, first},
			{store.KindPool, pool.ID, pool.Name, "", pool}, {store.KindImage, img.ID, img.Name, "", img}} {
			data, err := json.Marshal(o.v)
			if err != nil {
				return err
			}
			if err := tx.CreateObject(ctx, &store.Object{Kind: o.kind, ID: o.id, Name: o.name, Parent: o.pa, Data: data}); err != nil {
				return err
			}
		}
		if !demo {
			return nil
		}
		_, _, err := s.Tasks.SubmitTx(ctx, tx, tasks.Submission{Kind: flow.KindImageImport, Target: "image/" + img.ID,
			Resources: []string{"image/" + img.ID}, Input: flow.ImageInput{ImageID: img.ID, ClusterID: c.ID}})
		return err
	})
	if err == nil && demo {
		s.Tasks.Wake()
	}
	return err
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
	if cfg.DataDir != "" {
		// Relative to where the daemon started (make run: ./var); what
		// keeps files there wants the full path.
		dir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "daemon: DataDir %q: %v", cfg.DataDir, err)
		}
		cfg.DataDir = dir
	}
	switch {
	case cfg.SimInMemory:
		cfg.SimStore = nil // simnode: in memory only
	case cfg.SimStore == nil:
		cfg.SimStore = cfg.Store
	}
	if a := cfg.LocalMigrationAddress; a != "" {
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.Zone() != "" {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "daemon: LocalMigrationAddress %q must be an IP address", a)
		}
	}
	if cfg.LocalLibvirtSocket == "" {
		cfg.LocalLibvirtSocket = model.DefaultLibvirtSocket
	}
	s := &Server{cfg: cfg, Auth: auth.New(cfg.Store, directoryAuth(cfg)...), Events: events.NewBus(), Metrics: metrics.New(cfg.Store), consoleDial: cfg.ConsoleDial}
	if s.consoleDial == nil {
		s.consoleDial = s.dialNode
	}
	if cfg.AgentBinary != "" {
		s.agentBin = &agentBinary{path: cfg.AgentBinary, version: cfg.AgentVersion}
	}
	s.Metrics.AddUsage(usageSource{s})
	eng, err := tasks.New(tasks.Config{
		Store: cfg.Store, Instance: cfg.Instance, Workers: cfg.Workers, Logger: cfg.Logger, Lease: cfg.TaskLease,
		OnChange: func(t store.Task) {
			s.Metrics.ObserveTask(t)
			s.Events.Publish(events.Event{Type: "task", Action: "progress", ID: t.ID, Owner: t.Owner,
				State: string(t.State), Progress: t.Progress, Message: t.Message, Target: t.Target})
		},
		// The flow exists before the engine runs.
		OnLead: func(ctx context.Context, took bool) { s.Flow.Lead(ctx, took) },
	})
	if err != nil {
		return nil, err
	}
	s.Tasks = eng
	if is, ok := cfg.Store.(interface{ IPAM() ipam.Store }); ok {
		if s.IPAM, err = ipam.New(ipam.Config{Store: is.IPAM()}); err != nil {
			return nil, err
		}
	}
	s.backends = map[string]openedBackend{}
	if s.storage, err = newStorageDrivers(cfg.StorageDrivers); err != nil {
		return nil, err
	}
	if s.kinds, err = node.NewKinds(append(s.builtinKinds(), cfg.NodeKinds...)...); err != nil {
		return nil, err
	}
	var ops []flow.Option
	if cfg.DataDir != "" {
		cache, err := storage.NewImageCache(filepath.Join(cfg.DataDir, "image-cache"))
		if err != nil {
			return nil, err
		}
		ops = append(ops, flow.WithImageCache(cache))
	}
	if s.Flow, err = flow.New(flow.Config{Store: cfg.Store, Events: s.Events, IPAM: s.IPAM, Node: s.Backend, Shared: s.storage}, ops...); err != nil {
		return nil, err
	}
	s.Flow.Register(eng)
	if err := s.scriptServices(); err != nil {
		return nil, err
	}
	checker, err := cfg.DNSBL.checker()
	if err != nil {
		return nil, err
	}
	s.API, err = api.New(api.Config{
		Store: cfg.Store, Tasks: eng, Auth: s.Auth, Events: s.Events, Metrics: s.Metrics,
		Version: cfg.Version, IPAM: s.IPAM, Invalidate: s.Flow.Invalidate, Nodes: nodeAdmin{s}, Storages: storageAdmin{s},
		Backend: s.Flow, Console: consoles{s}, CheckOverride: s.checkOverride, ConsoleTicketTTL: cfg.ConsoleTicketTTL,
		Scripts: s.Scripts, Notify: s.Notify, DNSBL: checker,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close drops the daemon's connections to its nodes; the task engine
// stops with the context given to Run.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, e := range s.backends {
		if e.b.Close != nil {
			errs = append(errs, e.b.Close())
		}
		delete(s.backends, id)
	}
	return errors.Join(errs...)
}

// DataDir is where the daemon keeps files ("" for none).
func (s *Server) DataDir() string { return s.cfg.DataDir }

// Handler is the daemon's HTTP handler.
func (s *Server) Handler() http.Handler { return s.API.Handler() }

// Run runs the task engine until ctx ends (tasks left unfinished by an
// earlier run are rolled back first), the notifications and the
// directory sync beside it.
func (s *Server) Run(ctx context.Context) error {
	go s.syncDirectory(ctx)
	return s.runAll(ctx)
}

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

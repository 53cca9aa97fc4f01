// Command virtplaned is the reference daemon of virtplane.
//
//	virtplaned serve --data ./var                       # SQLite in ./var, 127.0.0.1:8080
//	virtplaned serve --store postgres --dsn postgres://... --listen :8080
//	virtplaned serve --config /etc/virtplane/virtplaned.json
//
// On first start it creates the admin account and prints a token for it,
// and the URL of the API documentation.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/store/postgres"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	vmmfake "github.com/virtplane/virtplane/vmm/fake"
	"github.com/virtplane/virtplane/vmm/libvirt"
	"github.com/virtplane/virtplane/vmm/lxd"
)

func main() {
	if err := rootCommand(os.Stdout).Execute(); err != nil {
		os.Exit(1)
	}
}

// Config is the daemon's configuration file (JSON); flags given on the
// command line win over it.
type Config struct {
	Data          string `json:"data"`
	Listen        string `json:"listen"`
	Store         string `json:"store"`
	DSN           string `json:"dsn"`
	Instance      string `json:"instance"`
	AdminPassword string `json:"admin_password"`
	// Node is "auto" (the local libvirtd when its socket answers, otherwise
	// a simulated node), "local", "sim" or "none".
	Node        string `json:"node"`
	LibvirtSock string `json:"libvirt_socket"`
	LogLevel    string `json:"log_level"`
	TaskWorkers int    `json:"task_workers"`
	// TaskLease is how long the other daemons on the store wait for this
	// one, stopped, before they take its tasks over (Go duration; 30s).
	TaskLease    string `json:"task_lease"`
	ShutdownWait string `json:"shutdown_wait"`
	// SimLatency slows the hypervisor of simulated nodes down: a Go
	// duration per vmm method ({"CopyDisk": "5s"}).
	SimLatency map[string]string `json:"sim_latency"`
	// SSHKeyFile is the key the daemon logs in to ssh:// nodes with
	// (default: one it makes in the data directory); SSHKnownHostsFile
	// holds host keys of nodes recorded without a pinned one.
	SSHKeyFile        string `json:"ssh_key_file"`
	SSHKnownHostsFile string `json:"ssh_known_hosts_file"`
	// AgentBinary is the binary installed as the node agent on ssh://
	// nodes (default: this one).
	AgentBinary string `json:"agent_binary"`
	// LXDSocket is the local LXD's socket: a node with address "local" in
	// an lxd cluster runs its containers there, when it answers.
	LXDSocket string `json:"lxd_socket"`
	// MigrationAddress is the IP this host's libvirtd takes live
	// migrations from other nodes on (empty: libvirt's choice).
	MigrationAddress string `json:"migration_address"`
	// DomainType is the libvirt domain type of the VMs: "kvm", "qemu"
	// (software emulation), or "auto"/empty: each node's libvirt driver
	// detects it (kvm when libvirt offers it and a kvm guest boots).
	DomainType string `json:"domain_type"`
	// DemoImage is a bootable raw disk registered as the first OS image of
	// a fresh local node (make run builds one with hack/env/demo.sh).
	DemoImage string `json:"demo_image"`
	// LDAP signs directory users in (ldap.go).
	LDAP *LDAPConfig `json:"ldap,omitempty"`
	// DNSBL is the blocklists pools' addresses are checked against (dnsbl.go).
	DNSBL *DNSBLConfig `json:"dnsbl,omitempty"`
	// Scripts and notifications (notify.go).
	Scripts ScriptsFile `json:"scripts"`
	Notify  NotifyFile  `json:"notify"`
}

func defaults() Config {
	return Config{Data: "./var", Listen: "127.0.0.1:8080", Store: "sqlite", Node: "auto",
		LibvirtSock: "/run/libvirt/libvirt-sock", LXDSocket: "/var/lib/lxd/unix.socket", LogLevel: "info", ShutdownWait: "10s"}
}

func rootCommand(out io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "virtplaned",
		Short:         "The reference control plane of virtplane",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(serveCommand(out), agentCommand(), versionCommand(out))
	return root
}

// versionCommand prints the version the agent handshake compares: a
// daemon asks the binary it installs on its nodes.
func versionCommand(out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print this binary's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(out, buildVersion())
			return err
		},
	}
}

func serveCommand(out io.Writer) *cobra.Command {
	var configFile string
	flags := defaults()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: API, task engine, events, metrics",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := defaults()
			if configFile != "" {
				b, err := os.ReadFile(configFile)
				if err != nil {
					return fmt.Errorf("config: %w", err)
				}
				if err := json.Unmarshal(b, &cfg); err != nil {
					return virtplane.Errorf(virtplane.ErrInvalidArgument, "config %s: %v", configFile, err)
				}
			}
			// Flags set on the command line win over the file.
			cmd.Flags().Visit(func(f *pflag.Flag) {
				switch f.Name {
				case "data":
					cfg.Data = flags.Data
				case "listen":
					cfg.Listen = flags.Listen
				case "store":
					cfg.Store = flags.Store
				case "dsn":
					cfg.DSN = flags.DSN
				case "instance":
					cfg.Instance = flags.Instance
				case "node":
					cfg.Node = flags.Node
				case "admin-password":
					cfg.AdminPassword = flags.AdminPassword
				case "task-lease":
					cfg.TaskLease = flags.TaskLease
				case "domain-type":
					cfg.DomainType = flags.DomainType
				case "demo-image":
					cfg.DemoImage = flags.DemoImage
				default:
					notifyFlag(f.Name, &cfg, flags)
				}
			})
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "configuration file (JSON)")
	f.StringVar(&flags.Data, "data", flags.Data, "directory of the SQLite database and simulated nodes")
	f.StringVar(&flags.Listen, "listen", flags.Listen, "address of the HTTP API")
	f.StringVar(&flags.Store, "store", flags.Store, "sqlite or postgres")
	f.StringVar(&flags.DSN, "dsn", "", "PostgreSQL connection string (with --store postgres)")
	f.StringVar(&flags.Instance, "instance", "", "name of this daemon among those sharing a store (default: host name)")
	f.StringVar(&flags.Node, "node", flags.Node, "first node: auto, local, sim or none")
	f.StringVar(&flags.AdminPassword, "admin-password", "", "password of the admin account created on first start (default: random)")
	f.StringVar(&flags.TaskLease, "task-lease", "", "how long daemons sharing the store wait for a stopped one before taking its tasks over (default 30s)")
	f.StringVar(&flags.DomainType, "domain-type", "auto", "libvirt domain type of the VMs: auto (detect per node), kvm or qemu")
	f.StringVar(&flags.DemoImage, "demo-image", "", "bootable raw disk image to register as the first OS image of a fresh local node (make run: hack/env/demo.sh)")
	notifyFlags(f, &flags)
	return cmd
}

func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	switch cfg.Store {
	case "sqlite", "":
		return sqlite.Open(ctx, filepath.Join(cfg.Data, "virtplane.db"))
	case "postgres":
		return postgres.Open(ctx, cfg.DSN)
	}
	return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "store %q: sqlite or postgres", cfg.Store)
}

func serve(ctx context.Context, cfg Config, out io.Writer) error {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if cfg.Instance == "" {
		h, _ := os.Hostname()
		abs, _ := filepath.Abs(cfg.Data)
		cfg.Instance = h + ":" + abs
	}
	domainType := cfg.DomainType
	switch domainType {
	case "auto":
		domainType = ""
	case "", "kvm", "qemu":
	default:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "domain_type %q: want auto, kvm or qemu", cfg.DomainType)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	node := cfg.Node
	libvirtUp := false
	if c, err := net.DialTimeout("unix", cfg.LibvirtSock, time.Second); err == nil {
		_ = c.Close()
		libvirtUp = true
	}
	if node == "auto" {
		node = daemon.SimAddress
		if libvirtUp {
			node = daemon.LocalAddress
		}
	}
	dcfg := daemon.Config{Store: st, Instance: cfg.Instance, Logger: log, Workers: cfg.TaskWorkers, Version: buildVersion(), AgentVersion: buildVersion(), DataDir: cfg.Data,
		LocalLibvirtSocket: cfg.LibvirtSock, SSHKeyFile: cfg.SSHKeyFile, SSHKnownHostsFile: cfg.SSHKnownHostsFile, AgentBinary: cfg.AgentBinary, LocalMigrationAddress: cfg.MigrationAddress, DomainType: domainType, DemoImage: cfg.DemoImage}
	if dcfg.Scripts, dcfg.Notify, err = cfg.scriptsAndNotify(); err != nil {
		return err
	}
	if libvirtUp {
		// The local node: this host's libvirtd, disks in a file pool under
		// the data directory.
		abs, err := filepath.Abs(cfg.Data)
		if err != nil {
			return err
		}
		images, state, ports := filepath.Join(abs, "images"), filepath.Join(abs, "vmm"), filepath.Join(abs, "ports")
		for _, d := range []string{images, state} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		dcfg.LocalDriver = func(context.Context) (vmm.Driver, error) {
			return libvirt.New(libvirt.Config{Socket: cfg.LibvirtSock, StateDir: state},
				libvirt.WithValues(libvirt.Values{DomainType: domainType}), libvirt.WithLogger(log))
		}
		dcfg.LocalStorage = func(context.Context) (storage.Pool, error) {
			return file.New(file.Config{Name: "node", Dir: images})
		}
		// The VMs' ports: bridges, nftables and tc of this host's kernel.
		dcfg.LocalPorts = func(context.Context) (netport.Ports, error) {
			h, _, err := netport.OpenKernelHost(ports, "") // open while the daemon runs
			return h, err
		}
	}
	if c, err := net.DialTimeout("unix", cfg.LXDSocket, time.Second); err == nil {
		_ = c.Close()
		// An lxd cluster's "local" node: this host's LXD.
		dcfg.LocalLXD = func(context.Context) (vmm.Driver, error) {
			return lxd.New(lxd.Config{Socket: cfg.LXDSocket})
		}
	}
	if dcfg.AgentBinary == "" {
		// ssh:// nodes run this very binary as their agent.
		if dcfg.AgentBinary, err = os.Executable(); err != nil {
			return virtplane.Errorf(virtplane.ErrUnavailable, "this binary's path: %v", err)
		}
	}
	if dcfg.SimLatency, err = simLatency(cfg.SimLatency); err != nil {
		return err
	}
	if cfg.TaskLease != "" {
		d, err := time.ParseDuration(cfg.TaskLease)
		if err != nil || d <= 0 {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "task lease %q is not a positive duration", cfg.TaskLease)
		}
		dcfg.TaskLease = d
	}
	if err := applyLDAP(&dcfg, cfg.LDAP); err != nil {
		return err
	}
	if err := applyDNSBL(&dcfg, cfg.DNSBL); err != nil {
		return err
	}
	srv, err := daemon.New(dcfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	token, err := srv.Bootstrap(ctx, cfg.AdminPassword)
	if err != nil {
		return err
	}
	if token != "" && node != "none" {
		if err := srv.SetupFirstNode(ctx, node); err != nil {
			log.Warn("first node not set up", "node", node, "err", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "listen on %s: %v", cfg.Listen, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "virtplaned listening on http://%s (store %s, instance %s)\n", ln.Addr(), cfg.Store, cfg.Instance)
	fmt.Fprintf(out, "API documentation: http://%s/docs\n", ln.Addr())
	if token != "" {
		fmt.Fprintf(out, "first start: admin token (shown once): %s\n", token)
		if node == "local" && cfg.DemoImage != "" {
			fmt.Fprintf(out, "  the first OS image is the demo image (%s): a VM of it shows a banner on its console (POST /v1/vms/{id}/console, then open page_url)\n", cfg.DemoImage)
		}
		fmt.Fprintf(out, "  curl -H 'Authorization: Bearer %s' http://%s/v1/vms\n", token, ln.Addr())
	}
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	engineDone := make(chan error, 1)
	go func() { engineDone <- srv.Run(runCtx) }()
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-httpDone:
		cancelRun()
		return err
	}
	wait, _ := time.ParseDuration(cfg.ShutdownWait)
	sctx, cancel := context.WithTimeout(context.Background(), max(wait, time.Second))
	defer cancel()
	_ = hs.Shutdown(sctx)
	cancelRun()
	if err := <-engineDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// simLatency reads the sim_latency setting: durations by the name of a
// method of the simulated hypervisor.
func simLatency(in map[string]string) (map[string]time.Duration, error) {
	if len(in) == 0 {
		return nil, nil
	}
	methods := reflect.TypeFor[*vmmfake.Driver]()
	out := map[string]time.Duration{}
	for m, v := range in {
		if _, ok := methods.MethodByName(m); !ok {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "sim_latency: %q is no method of the simulated hypervisor (vmm method names: Create, Start, CopyDisk, ...)", m)
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "sim_latency.%s: %q is not a duration", m, v)
		}
		out[m] = d
	}
	return out, nil
}

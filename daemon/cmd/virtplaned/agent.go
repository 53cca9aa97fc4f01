package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/storage/opener"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
	"github.com/virtplane/virtplane/vmm/lxd"
)

// agentFlags configure `virtplaned agent`.
type agentFlags struct {
	Socket        string
	StateDir      string
	Hypervisor    string // libvirt, lxd or none
	LibvirtSocket string
	DomainType    string
	LXDSocket     string
	LXDPool       string
	LogLevel      string
	// PIDFile, when set, gets this process's pid once it holds the state
	// directory's lock: an agent started while another runs exits without
	// touching it, so the file always names the agent that serves.
	PIDFile string
}

func agentDefaults() agentFlags {
	return agentFlags{Socket: "/run/virtplane/agent.sock", StateDir: "/var/lib/virtplane/agent", Hypervisor: "libvirt",
		LibvirtSocket: "/run/libvirt/libvirt-sock", DomainType: "auto", LXDSocket: "/var/lib/lxd/unix.socket", LXDPool: "default", LogLevel: "info"}
}

// agentCommand is the node side of a node: it serves this host's drivers
// to the controller on a unix socket that the controller reaches through
// its SSH connection (package agent).
func agentCommand() *cobra.Command {
	f := agentDefaults()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Serve this node's hypervisor, storage, network ports and commands to the controller (unix socket)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runAgent(ctx, f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Socket, "socket", f.Socket, "unix socket to serve on (made 0600 in a 0700 directory)")
	fl.StringVar(&f.StateDir, "state-dir", f.StateDir, "directory of the node's file pool (images/), VM files (vmm/), port records (ports/) and uploads (uploads/)")
	fl.StringVar(&f.Hypervisor, "hypervisor", f.Hypervisor, "libvirt, lxd or none")
	fl.StringVar(&f.LibvirtSocket, "libvirt-socket", f.LibvirtSocket, "libvirtd's read-write socket")
	fl.StringVar(&f.DomainType, "domain-type", f.DomainType, "libvirt domain type: auto (detect: kvm only when a kvm guest boots), kvm or qemu")
	fl.StringVar(&f.LXDSocket, "lxd-socket", f.LXDSocket, "LXD's unix socket (with --hypervisor lxd)")
	fl.StringVar(&f.LXDPool, "lxd-pool", f.LXDPool, "LXD storage pool of the containers' root disks")
	fl.StringVar(&f.LogLevel, "log-level", f.LogLevel, "debug, info, warn or error")
	fl.StringVar(&f.PIDFile, "pid-file", f.PIDFile, "file to write this agent's pid to once it holds the state directory (removed on exit)")
	return cmd
}

// buildVersion is this binary's version as the agent protocol compares
// it: the module version of a release, else the VCS revision it was built
// from, else "dev". The controller's side must report the same function's
// answer, since it installs its own binary as the agent.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

func runAgent(ctx context.Context, f agentFlags, logOut io.Writer) error {
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(f.LogLevel)); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: --log-level %q: %v", f.LogLevel, err)
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if err := storage.ValidatePath("agent: --state-dir", f.StateDir); err != nil {
		return err
	}
	dirs := map[string]string{}
	for _, sub := range []string{"images", "vmm", "ports", "uploads"} {
		dirs[sub] = filepath.Join(f.StateDir, sub)
		// 0755: libvirtd's QEMU reads images and writes console logs here.
		if err := os.MkdirAll(dirs[sub], 0o755); err != nil {
			return virtplane.Errorf(virtplane.ErrUnavailable, "agent: %s: %v", dirs[sub], err)
		}
	}
	unlock, err := lockDir(f.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	if f.PIDFile != "" {
		remove, err := writePIDFile(f.PIDFile)
		if err != nil {
			return err
		}
		defer remove()
	}

	node, closeNode, err := hostNode(ctx, f, dirs, log)
	if err != nil {
		return err
	}
	defer closeNode()
	version := buildVersion()
	srv, err := agent.NewServer(agent.ServerConfig{Node: node, Version: version, Logger: log})
	if err != nil {
		return err
	}
	l, err := agent.ListenUnix(f.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(f.Socket)
	log.Info("agent serving", "socket", f.Socket, "version", version, "protocol", agent.Protocol, "hypervisor", f.Hypervisor, "state", f.StateDir)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close() // event streams end only with their callers
	}
	return <-served
}

// writePIDFile writes this process's pid to file (through a rename, so a
// reader never sees half of it); remove deletes it if it still names us.
func writePIDFile(file string) (remove func(), err error) {
	pid := strconv.Itoa(os.Getpid())
	tmp := file + ".new"
	if err := os.WriteFile(tmp, []byte(pid+"\n"), 0o644); err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "agent: --pid-file: %v", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "agent: --pid-file: %v", err)
	}
	return func() {
		if b, err := os.ReadFile(file); err == nil && strings.TrimSpace(string(b)) == pid {
			_ = os.Remove(file)
		}
	}, nil
}

// lockDir holds an exclusive lock on dir: one agent per state directory.
func lockDir(dir string) (func(), error) {
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "agent: lock: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, virtplane.Errorf(virtplane.ErrConflict, "agent: another agent runs on %s", dir)
	}
	return func() { _ = lock.Close() }, nil
}

// hostNode is what this host offers: its hypervisor, a file pool "local",
// the kernel's ports, its commands, uploads and facts.
func hostNode(ctx context.Context, f agentFlags, dirs map[string]string, log *slog.Logger) (agent.Node, func(), error) {
	var closers []func()
	closeAll := func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	fail := func(err error) (agent.Node, func(), error) {
		closeAll()
		return agent.Node{}, nil, err
	}
	openers, err := poolOpeners()
	if err != nil {
		return fail(err)
	}
	node := agent.Node{Exec: storage.LocalExecutor{}, UploadDir: dirs["uploads"], PoolOpeners: openers}

	switch f.Hypervisor {
	case "libvirt":
		dt := f.DomainType
		switch dt {
		case "auto":
			dt = ""
		case "kvm", "qemu":
		default:
			return fail(virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: --domain-type %q: want auto, kvm or qemu", f.DomainType))
		}
		d, err := libvirt.New(libvirt.Config{Socket: f.LibvirtSocket, StateDir: dirs["vmm"]},
			libvirt.WithValues(libvirt.Values{DomainType: dt}), libvirt.WithLogger(log))
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { _ = d.Close() })
		// Detected now, so the log says it before the first create; a
		// libvirtd that is not up yet is detected on first use instead.
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		if det, err := d.DetectDomainType(dctx); err != nil {
			log.Warn("agent: libvirt domain type not detected yet", "err", err)
		} else {
			log.Info("agent: libvirt domain type", "type", det.DomainType, "cpu_mode", det.CPUMode, "reason", det.Reason)
		}
		cancel()
		node.VMM = d
	case "lxd":
		d, err := lxd.New(lxd.Config{Socket: f.LXDSocket, Pool: f.LXDPool})
		if err != nil {
			return fail(err)
		}
		node.VMM = d
	case "none":
	default:
		return fail(virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: --hypervisor %q: want libvirt, lxd or none", f.Hypervisor))
	}

	pool, err := file.New(file.Config{Name: "local", Dir: dirs["images"]})
	if err != nil {
		return fail(err)
	}
	node.Pools = map[string]storage.Pool{"local": pool}

	nl, err := netlink.NewHandle()
	if err != nil {
		return fail(virtplane.Errorf(virtplane.ErrUnavailable, "agent: netlink: %v", err))
	}
	closers = append(closers, nl.Close)
	nft, err := nftables.New()
	if err != nil {
		return fail(virtplane.Errorf(virtplane.ErrUnavailable, "agent: nftables: %v", err))
	}
	ports, err := netport.NewKernelHost(dirs["ports"], nl, nft)
	if err != nil {
		return fail(err)
	}
	node.Ports = ports
	node.Facts = hostFacts(node.VMM)
	return node, closeAll, nil
}

// hostFacts reads this host's facts, with the versions of libvirt and
// QEMU when the node runs them (asked once: they change with a restart).
func hostFacts(d vmm.Driver) func(ctx context.Context) (agent.Facts, error) {
	versions := sync.OnceValues(func() (string, string) {
		if _, ok := d.(*libvirt.Driver); !ok {
			return "", ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return commandVersion(ctx, "libvirtd", "--version"), commandVersion(ctx, "qemu-system-x86_64", "--version")
	})
	return func(ctx context.Context) (agent.Facts, error) {
		f, err := agent.ReadHostFacts(ctx)
		if err != nil {
			return agent.Facts{}, err
		}
		f.Libvirt, f.QEMU = versions()
		return f, nil
	}
}

var versionRE = regexp.MustCompile(`\d+\.\d+(\.\d+)?`)

// commandVersion is the first version number a program prints, or "".
func commandVersion(ctx context.Context, name string, args ...string) string {
	out, err := storage.LocalExecutor{}.Run(ctx, storage.Command{Name: name, Args: args})
	if err != nil {
		return ""
	}
	return versionRE.FindString(string(out))
}

// poolOpeners are the storage drivers this binary opens on the node when
// the controller asks (agent.Client.OpenPool): those of storage/opener
// (ceph opens only in a binary built with the ceph tag); "file" is the
// agent's own.
func poolOpeners() (map[string]agent.PoolOpener, error) {
	reg, err := opener.New(opener.Builtin()...)
	if err != nil {
		return nil, err
	}
	o := map[string]agent.PoolOpener{}
	for _, name := range reg.Names() {
		if name != "file" {
			o[name] = reg.Open
		}
	}
	return o, nil
}

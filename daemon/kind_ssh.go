package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/sshnode"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// agentStartWait bounds how long a started agent may take to answer
// (it detects the libvirt domain type first, unless told it).
const agentStartWait = 90 * time.Second

// agentRestartEvery bounds how often a client starts an agent that does
// not answer: calls that find it gone together start it once.
const agentRestartEvery = 5 * time.Second

// sshKind is a machine reached over SSH
// (ssh://USER@HOST[:PORT][?socket=…][&agent=…][&netns=…]), as Proxmox and
// VMmanager reach theirs. Adding it logs in once with the operator's
// password or key, pins the host key, installs the daemon's own key and
// binary, and starts that binary as the node agent (`virtplaned agent`);
// from then on the daemon talks only to the agent, through its SSH
// connection, and the node shares nothing with the daemon's host.
func (s *Server) sshKind() node.Kind {
	return node.Kind{
		Name:  "ssh",
		Forms: "ssh://USER@HOST[:PORT][?socket=PATH][&agent=PATH][&netns=NAME] (a machine reached over SSH, served by the node agent)",
		Parse: func(field, raw string) (any, string, bool, error) {
			sa, ok, err := model.ParseSSHAddress(field, raw)
			return sa, "", ok, err
		},
		Prepare: s.prepareSSH,
		Open:    s.openSSH,
		Remote:  true,
	}
}

// hypervisorOf is the agent's --hypervisor for a cluster's virtualization type.
func hypervisorOf(virtType string) (string, error) {
	switch virtType {
	case model.VirtKVM:
		return "libvirt", nil
	case model.VirtLXD:
		return "lxd", nil
	}
	return "", virtplane.Errorf(virtplane.ErrNotImplemented, "an ssh node in a %s cluster", virtType)
}

func (s *Server) agentInstall(name string, sa model.SSHAddress, virtType string) (agentInstall, error) {
	if s.agentBin == nil {
		return agentInstall{}, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: ssh:// nodes run the node agent, and this daemon has no agent binary to install (Config.AgentBinary)", name)
	}
	hv, err := hypervisorOf(virtType)
	if err != nil {
		return agentInstall{}, fmt.Errorf("node %s: %w", name, err)
	}
	return agentInstall{node: name, bin: s.agentBin, path: sa.Agent, hypervisor: hv,
		libvirtSocket: sa.Socket, domainType: s.cfg.DomainType, netns: sa.Netns}, nil
}

// prepareSSH makes a new ssh:// node ready: every step it made is undone
// when a later one fails, so that a node that could not be added is left
// as it was.
func (s *Server) prepareSSH(ctx context.Context, name string, addr node.Address, virtType string, cred node.Credentials) (node.Facts, error) {
	sa := addr.Parsed.(model.SSHAddress)
	inst, err := s.agentInstall(name, sa, virtType)
	if err != nil {
		return node.Facts{}, err
	}
	key, err := s.daemonKey()
	if err != nil {
		return node.Facts{}, fmt.Errorf("node %s: %w", name, err)
	}
	// The operator's credentials, once, with the host key pinned on first
	// contact (or checked against the fingerprint given).
	first := sshnode.TrustOnFirstUse(cred.HostKeyFingerprint)
	cfg := sshnode.Config{Name: name, Addr: sa.HostPort(), User: sa.User, HostKeyCallback: first.Callback}
	switch {
	case cred.Password != "":
		cfg.Password = cred.Password
	case cred.PrivateKey != "":
		cfg.PrivateKey = []byte(cred.PrivateKey)
	default:
		cfg.PrivateKey = key.private // the daemon's key may be there already
	}
	login, err := sshnode.New(cfg, sshnode.WithLogger(s.cfg.Logger))
	if err != nil {
		return node.Facts{}, err
	}
	defer login.Close()
	if err := login.Connect(ctx); err != nil {
		return node.Facts{}, err
	}
	hostKey, fingerprint := first.Key()

	r := revert.New()
	defer r.Fail()
	ex := login.Executor()
	added, err := authorizeKey(ctx, ex, name, key.authorized)
	if err != nil {
		return node.Facts{}, err
	}
	if added {
		r.Add(func() { _ = unauthorizeKey(context.Background(), ex, key.authorized) })
	}
	// From here on the daemon's own key and the pinned host key: what the
	// node's record will be opened with, proved to work now.
	conn, err := s.sshConn(name, sa, hostKey)
	if err != nil {
		return node.Facts{}, err
	}
	defer conn.Close()
	if err := conn.Connect(ctx); err != nil {
		return node.Facts{}, fmt.Errorf("logging in with the daemon's key after installing it: %w", err)
	}
	nex := conn.Executor()
	installed, err := inst.installBinary(ctx, nex)
	if err != nil {
		return node.Facts{}, err
	}
	if installed {
		r.Add(func() { _ = inst.removeBinary(context.Background(), nex) })
	}
	cl, err := s.agentClient(name, conn, inst)
	if err != nil {
		return node.Facts{}, err
	}
	defer cl.Close()
	started, err := s.ensureAgent(ctx, cl, nex, inst)
	if started {
		r.Add(func() { _ = inst.stop(context.Background(), nex) })
	}
	if err != nil {
		return node.Facts{}, err
	}
	f, err := agentFacts(ctx, cl)
	if err != nil {
		return node.Facts{}, err
	}
	f.HostKey, f.HostKeyFingerprint = hostKey, fingerprint
	r.Success()
	return f, nil
}

// sshConn is the daemon's connection to a recorded node: its own key, the
// node's pinned host key (known_hosts for nodes recorded without one).
func (s *Server) sshConn(name string, sa model.SSHAddress, hostKey string) (*sshnode.Conn, error) {
	key, err := s.daemonKey()
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	cfg := sshnode.Config{Name: name, Addr: sa.HostPort(), User: sa.User, PrivateKey: key.private, HostKey: hostKey}
	if hostKey == "" {
		if s.cfg.SSHKnownHostsFile == "" {
			return nil, virtplane.Errorf(virtplane.ErrConflict, "node %s: no pinned host key and no known_hosts file (ssh_known_hosts_file): add the node again", name)
		}
		cfg.KnownHostsFile = s.cfg.SSHKnownHostsFile
	}
	return sshnode.New(cfg, sshnode.WithLogger(s.cfg.Logger))
}

// agentClient is a client of the node's agent over conn. A dial that finds
// no agent listening starts it (at most every few seconds) and waits for
// it to answer, so that an agent that died comes back within the call
// that found it gone.
func (s *Server) agentClient(name string, conn *sshnode.Conn, inst agentInstall) (*agent.Client, error) {
	if err := inst.bin.load(); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var lastStart time.Time
	dial := func(ctx context.Context) (net.Conn, error) {
		c, err := conn.DialUnix(ctx, agentSocket)
		if err == nil || !errors.Is(err, virtplane.ErrUnavailable) || conn.Connect(ctx) != nil {
			return c, err
		}
		// The SSH connection is up and the socket does not answer: the
		// agent is not running.
		mu.Lock()
		restart := time.Since(lastStart) > agentRestartEvery
		if restart {
			lastStart = time.Now()
		}
		mu.Unlock()
		if restart {
			s.cfg.Logger.Warn("node agent not answering, starting it", "node", name, "err", err)
			if serr := inst.start(ctx, conn.Executor()); serr != nil {
				return nil, errors.Join(err, serr)
			}
		}
		// Started now or a moment ago by another call: wait for it.
		wctx, cancel := context.WithTimeout(ctx, agentStartWait)
		defer cancel()
		for {
			select {
			case <-wctx.Done():
				return nil, fmt.Errorf("%w (the agent started did not answer in %s: %s)", err, agentStartWait, inst.logTail(ctx, conn.Executor()))
			case <-time.After(100 * time.Millisecond):
			}
			if c, derr := conn.DialUnix(wctx, agentSocket); derr == nil {
				return c, nil
			}
		}
	}
	return agent.NewClient(agent.ClientConfig{Dial: dial, Version: inst.bin.version, Node: name, Logger: s.cfg.Logger})
}

// ensureAgent makes the handshake with the node's agent, starting it when
// none answers and replacing it when it runs another version (an upgraded
// daemon). started says whether this call started an agent.
func (s *Server) ensureAgent(ctx context.Context, cl *agent.Client, ex storage.Executor, inst agentInstall) (started bool, err error) {
	_, err = cl.Hello(ctx)
	var ve *agent.VersionError
	switch {
	case err == nil:
		return false, nil
	case errors.As(err, &ve):
		s.cfg.Logger.Info("node agent runs another version, replacing it", "node", inst.node, "agent", ve.AgentVersion, "daemon", ve.ClientVersion)
		if _, err := inst.installBinary(ctx, ex); err != nil {
			return false, err
		}
		if err := inst.stop(ctx, ex); err != nil {
			return false, err
		}
	case errors.Is(err, virtplane.ErrUnavailable):
	default:
		return false, err
	}
	if err := inst.start(ctx, ex); err != nil {
		return false, err
	}
	err = waitFor(ctx, agentStartWait, virtplane.ErrUnavailable, func(ctx context.Context) error {
		_, err := cl.Hello(ctx)
		return err
	})
	if err != nil {
		if tail := inst.logTail(context.WithoutCancel(ctx), ex); tail != "" {
			err = fmt.Errorf("%w (agent log: %s)", err, tail)
		}
		return true, fmt.Errorf("node %s: the agent did not come up: %w", inst.node, err)
	}
	return true, nil
}

// agentFacts are the node's facts as its agent reports them.
func agentFacts(ctx context.Context, cl *agent.Client) (node.Facts, error) {
	af, err := cl.Facts(ctx)
	if err != nil {
		return node.Facts{}, err
	}
	h, err := cl.Hello(ctx)
	if err != nil {
		return node.Facts{}, err
	}
	f := node.Facts{Cores: af.Cores, MemoryMiB: af.MemoryBytes >> 20, Hostname: af.Hostname, AgentVersion: h.Version, Addresses: af.Addresses}
	if af.HostnameUnresolved != "" {
		f.Warnings = append(f.Warnings, af.HostnameUnresolved)
	}
	for _, p := range af.Pools {
		if p.Name == "local" {
			f.DiskGiB = p.Capacity >> 30
		}
	}
	return f, nil
}

// sshHandle is an opened ssh:// node, for migrations between two of them.
type sshHandle struct {
	name, host    string
	libvirtSocket string
	conn          *sshnode.Conn

	mu     sync.Mutex
	relays map[string]*relay // by target node name
}

// openSSH opens a recorded ssh:// node: its agent's drivers.
func (s *Server) openSSH(ctx context.Context, t node.Target) (*node.Backend, error) {
	sa := t.Address.Parsed.(model.SSHAddress)
	n := t.Node
	inst, err := s.agentInstall(n.Name, sa, t.Cluster.VirtType)
	if err != nil {
		return nil, err
	}
	conn, err := s.sshConn(n.Name, sa, n.HostKey)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*node.Backend, error) { _ = conn.Close(); return nil, err }
	if err := conn.Connect(ctx); err != nil {
		return fail(err)
	}
	cl, err := s.agentClient(n.Name, conn, inst)
	if err != nil {
		return fail(err)
	}
	if _, err := s.ensureAgent(ctx, cl, conn.Executor(), inst); err != nil {
		_ = cl.Close()
		return fail(err)
	}
	h := &sshHandle{name: n.Name, host: sa.Host, libvirtSocket: sa.Socket, conn: conn, relays: map[string]*relay{}}
	b := &node.Backend{
		VMM: cl.VMM(), Ports: cl.Ports(), Exec: cl.Exec(), Handle: h,
		Upload:  cl.Upload,
		Facts:   func(ctx context.Context) (node.Facts, error) { return agentFacts(ctx, cl) },
		OwnPool: func(context.Context) (storage.Pool, error) { return cl.Pool("local"), nil },
		Pool: func(ctx context.Context, ref model.StorageRef) (storage.Pool, error) {
			return cl.OpenPool(ctx, node.PoolSpec(ref))
		},
		// A console port the node's hypervisor listens on at 127.0.0.1.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if network != "tcp" {
				return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s: dial %s: only tcp", n.Name, network)
			}
			return conn.DialTCP(ctx, addr)
		},
		Close: func() error {
			h.closeRelays()
			_ = cl.Close()
			return conn.Close()
		},
	}
	if inst.hypervisor == "libvirt" {
		b.MigrateTo = h.migrateTo
	}
	return b, nil
}

// migrateTo is MigrateTo of an ssh:// node: to another ssh:// node, peer to
// peer. The source's libvirtd reaches the target's through a relay: a unix
// socket on the source node that the daemon forwards, over its two SSH
// connections, to the target's libvirt socket; the machine's memory and
// disks go straight between the nodes, to the target's address.
func (h *sshHandle) migrateTo(ctx context.Context, dst *node.Backend) (vmm.MigrationTarget, error) {
	d, ok := dst.Handle.(*sshHandle)
	if !ok {
		return vmm.MigrationTarget{}, virtplane.Errorf(virtplane.ErrNotImplemented, "live migration from an ssh node to a %s node", dst.Kind)
	}
	sock, err := h.relayTo(ctx, d)
	if err != nil {
		return vmm.MigrationTarget{}, err
	}
	return vmm.MigrationTarget{URI: "qemu+unix:///system?socket=" + sock, Address: d.host}, nil
}

// relay forwards connections to a unix socket on one node to the libvirt
// socket of another.
type relay struct {
	socket string
	l      net.Listener
}

func (h *sshHandle) relayTo(ctx context.Context, d *sshHandle) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.relays[d.name]; ok {
		return r.socket, nil
	}
	sock := "/run/virtplane/relay-" + sanitizeName(d.name) + ".sock"
	l, err := h.conn.ListenUnix(ctx, sock)
	if err != nil {
		return "", fmt.Errorf("node %s: relay to node %s: %w", h.name, d.name, err)
	}
	h.relays[d.name] = &relay{socket: sock, l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t, err := d.conn.DialUnix(dctx, d.libvirtSocket)
				cancel()
				if err != nil {
					return
				}
				defer t.Close()
				pipe(c, t)
			}()
		}
	}()
	return sock, nil
}

func (h *sshHandle) closeRelays() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, r := range h.relays {
		_ = r.l.Close()
		delete(h.relays, name)
	}
}

// pipe copies both ways until either side ends.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
}

// sanitizeName keeps the letters, digits, dots, dashes and underscores of
// a node name, for a file name.
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

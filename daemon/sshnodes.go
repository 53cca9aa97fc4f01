package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/sshnode"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// sshNode returns the connection to an ssh:// node, connected: a node that
// cannot be reached is unavailable, and the error names it. The connection
// stays with the daemon and reconnects by itself.
func (s *Server) sshNode(ctx context.Context, n model.Node) (*sshnode.Conn, model.SSHAddress, error) {
	sa, ok, err := model.ParseSSHAddress("address", n.Address)
	if err != nil {
		return nil, sa, fmt.Errorf("node %s: %w", n.Name, err)
	}
	if !ok {
		return nil, sa, virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s: address %q is not an ssh:// address", n.Name, n.Address)
	}
	key := n.ID + " " + n.Address
	s.sshMu.Lock()
	conn, have := s.sshConns[key]
	if !have {
		conn, err = s.newSSHConn(n, sa)
		if err != nil {
			s.sshMu.Unlock()
			return nil, sa, err
		}
		s.sshConns[key] = conn
	}
	s.sshMu.Unlock()
	if err := conn.Connect(ctx); err != nil {
		return nil, sa, err
	}
	return conn, sa, nil
}

func (s *Server) newSSHConn(n model.Node, sa model.SSHAddress) (*sshnode.Conn, error) {
	if s.cfg.SSHKeyFile == "" || s.cfg.SSHKnownHostsFile == "" {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: ssh:// nodes need the daemon's SSH key and known_hosts files (ssh_key_file, ssh_known_hosts_file), and this daemon has none", n.Name)
	}
	pem, err := os.ReadFile(s.cfg.SSHKeyFile)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "node %s: ssh key file: %v", n.Name, err)
	}
	return sshnode.New(sshnode.Config{Name: n.Name, Addr: sa.HostPort(), User: sa.User, PrivateKey: pem, KnownHostsFile: s.cfg.SSHKnownHostsFile},
		sshnode.WithLogger(s.cfg.Logger))
}

// sshDir is a directory the daemon keeps on ssh:// nodes.
func (s *Server) sshDir(elem ...string) string {
	return path.Join(append([]string{s.cfg.SSHNodeDir}, elem...)...)
}

// sshDriver opens the libvirt driver of an ssh:// node: its libvirtd
// through the SSH connection, per-VM files under the node directory.
func (s *Server) sshDriver(ctx context.Context, n model.Node) (vmm.Driver, error) {
	conn, sa, err := s.sshNode(ctx, n)
	if err != nil {
		return nil, err
	}
	ex := conn.Executor()
	dir := s.sshDir("vmm")
	if err := sshnode.SharedDir(ctx, ex, n.Name, dir); err != nil {
		return nil, err
	}
	socket := sa.Socket
	return libvirt.New(libvirt.Config{Socket: socket, StateDir: dir,
		Dial: func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, socket) }},
		// The node's own libvirt decides the domain type, unless configured.
		libvirt.WithValues(libvirt.Values{DomainType: s.cfg.DomainType}), libvirt.WithLogger(s.cfg.Logger))
}

// sshStorage opens the file pool of an ssh:// node: the cluster's first
// file storage when it has one, else the images directory under the node
// directory; qemu-img runs on the node.
func (s *Server) sshStorage(ctx context.Context, n model.Node) (storage.Pool, error) {
	conn, _, err := s.sshNode(ctx, n)
	if err != nil {
		return nil, err
	}
	name, dir := "node", s.sshDir("images")
	ref, ok, err := s.clusterFileStorage(ctx, n)
	if err != nil {
		return nil, err
	}
	if ok {
		name, dir = ref.Name, ref.Path
	}
	ex := conn.Executor()
	if err := sshnode.SharedDir(ctx, ex, n.Name, dir); err != nil {
		return nil, err
	}
	return file.New(file.Config{Name: name, Dir: dir, Exec: ex})
}

// sshPorts opens the network ports of an ssh:// node: the agent named by
// its address makes them on the node, in the network namespace the
// address names.
func (s *Server) sshPorts(ctx context.Context, n model.Node) (netport.Ports, error) {
	conn, sa, err := s.sshNode(ctx, n)
	if err != nil {
		return nil, err
	}
	return sshnode.NewPorts(conn.Executor(), sshnode.PortsConfig{Node: n.Name, Agent: sa.Agent,
		StateDir: s.sshDir("nodes", n.ID, "ports"), Netns: sa.Netns})
}

package daemon

import (
	"context"
	"net"
	"os"
	"path"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/sshnode"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// sshKind is a machine reached over SSH
// (ssh://USER@HOST[:PORT][?socket=…][&agent=…][&netns=…]): libvirt
// through the SSH connection, storage commands over SSH, network ports by
// `virtplaned port` run on the node.
func (s *Server) sshKind() node.Kind {
	return node.Kind{
		Name:  "ssh",
		Forms: "ssh://USER@HOST[:PORT][?socket=PATH][&agent=PATH][&netns=NAME] (a machine reached over SSH)",
		Parse: func(field, raw string) (any, string, bool, error) {
			sa, ok, err := model.ParseSSHAddress(field, raw)
			return sa, "", ok, err
		},
		Open: func(ctx context.Context, t node.Target) (*node.Backend, error) {
			sa := t.Address.Parsed.(model.SSHAddress)
			n := t.Node
			if t.Cluster.VirtType != model.VirtKVM {
				return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: an ssh node in a %s cluster", n.Name, t.Cluster.VirtType)
			}
			conn, err := s.newSSHConn(n, sa)
			if err != nil {
				return nil, err
			}
			if err := conn.Connect(ctx); err != nil {
				_ = conn.Close()
				return nil, err
			}
			ex := conn.Executor()
			vmDir := s.sshDir("vmm")
			if err := sshnode.SharedDir(ctx, ex, n.Name, vmDir); err != nil {
				_ = conn.Close()
				return nil, err
			}
			socket := sa.Socket
			drv, err := libvirt.New(libvirt.Config{Socket: socket, StateDir: vmDir,
				Dial: func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, socket) }},
				// The node's own libvirt decides the domain type, unless configured.
				libvirt.WithValues(libvirt.Values{DomainType: s.cfg.DomainType}), libvirt.WithLogger(s.cfg.Logger))
			if err != nil {
				_ = conn.Close()
				return nil, err
			}
			ports, err := sshnode.NewPorts(ex, sshnode.PortsConfig{Node: n.Name, Agent: sa.Agent,
				StateDir: s.sshDir("nodes", n.ID, "ports"), Netns: sa.Netns})
			if err != nil {
				_ = conn.Close()
				return nil, err
			}
			pool := func(ctx context.Context, name, dir string) (storage.Pool, error) {
				if err := sshnode.SharedDir(ctx, ex, n.Name, dir); err != nil {
					return nil, err
				}
				return file.New(file.Config{Name: name, Dir: dir, Exec: ex})
			}
			return &node.Backend{
				VMM: drv, Ports: ports, Exec: ex,
				OwnPool: func(ctx context.Context) (storage.Pool, error) { return pool(ctx, "node", s.sshDir("images")) },
				Pool: func(ctx context.Context, ref model.StorageRef) (storage.Pool, error) {
					if ref.Driver != "file" {
						return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: storage %s: the %s driver on an ssh node", n.Name, ref.Name, ref.Driver)
					}
					return pool(ctx, ref.Name, ref.Path)
				},
				Close: func() error { _ = drv.Close(); return conn.Close() },
			}, nil
		},
	}
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

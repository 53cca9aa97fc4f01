package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/opener"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// hostKind is another libvirtd on this host, named by its socket
// (qemu+unix:///system?socket=PATH[&migration_address=IP][&netns=NAME]):
// hosts running more than one, and migrations between them. Its files
// live under the daemon's data directory; its ports in the network
// namespace the address names.
func (s *Server) hostKind() node.Kind {
	facts := func(context.Context) (node.Facts, error) { return hostFacts(s.dataDirOrRoot()) }
	return node.Kind{
		Name:  "qemu+unix",
		Forms: "qemu+unix:///system?socket=PATH[&migration_address=IP][&netns=NAME] (another libvirtd on this host)",
		Parse: func(field, raw string) (any, string, bool, error) {
			la, ok, err := model.ParseLibvirtAddress(field, raw)
			return la, "", ok, err
		},
		Prepare: func(ctx context.Context, _ string, _ node.Address, _ string, _ node.Credentials) (node.Facts, error) {
			return facts(ctx)
		},
		Open: func(ctx context.Context, t node.Target) (*node.Backend, error) {
			la := t.Address.Parsed.(model.LibvirtAddress)
			n := t.Node
			if t.Cluster.VirtType != model.VirtKVM {
				return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: a libvirtd node in a %s cluster", n.Name, t.Cluster.VirtType)
			}
			if s.cfg.DataDir == "" {
				return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: nodes named by a libvirt socket keep files in the daemon's data directory, and it has none", n.Name)
			}
			// All libvirtds of this host keep their per-machine files in one
			// directory, as drivers of one host do: a machine moved between
			// them finds its files where its domain says.
			vmDir, err := s.hostDir("vmm")
			if err != nil {
				return nil, err
			}
			drv, err := libvirt.New(libvirt.Config{Socket: la.Socket, StateDir: vmDir},
				libvirt.WithValues(libvirt.Values{DomainType: s.cfg.DomainType}), libvirt.WithLogger(s.cfg.Logger))
			if err != nil {
				return nil, err
			}
			ports, err := s.hostPorts(n, la)
			if err != nil {
				return nil, err
			}
			return &node.Backend{
				VMM: drv, Ports: ports, Exec: storage.LocalExecutor{}, Facts: facts,
				Handle: libvirtHere{URI: la.URI, MigrationAddress: la.MigrationAddress}, MigrateTo: migrateHere,
				Pool: s.storage.hostPools(),
				OwnPool: func(ctx context.Context) (storage.Pool, error) {
					return s.storage.open(ctx, opener.Spec{Name: "node", Driver: "file", Path: filepath.Join(s.cfg.DataDir, "nodes", n.ID, "images")})
				},
				Close: drv.Close,
			}, nil
		},
	}
}

// hostDir returns a directory under the daemon's data directory, made.
func (s *Server) hostDir(elem ...string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(append([]string{s.cfg.DataDir}, elem...)...))
	if err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// hostPorts opens the network ports of a libvirtd on this host: bridges,
// nftables and tc of the network namespace its address names (the daemon's
// own by default), with their records under the node's directory.
func (s *Server) hostPorts(n model.Node, la model.LibvirtAddress) (netport.Ports, error) {
	dir, err := s.hostDir("nodes", n.ID, "ports")
	if err != nil {
		return nil, err
	}
	h, _, err := netport.OpenKernelHost(dir, la.Netns)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return h, nil // its handles stay open with the node's ports
}

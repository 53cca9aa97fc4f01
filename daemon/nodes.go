package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/daemon/store"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// flowOptions gives the flows what image imports and migrations need: a
// storage command executor per node and, with a data directory, a cache
// for images fetched by URL.
func (s *Server) flowOptions() ([]flow.Option, error) {
	opts := []flow.Option{flow.WithExecutor(s.executor), flow.WithMigrationTarget(s.migrationTarget)}
	if s.cfg.DataDir != "" {
		cache, err := storage.NewImageCache(filepath.Join(s.cfg.DataDir, "image-cache"))
		if err != nil {
			return nil, err
		}
		opts = append(opts, flow.WithImageCache(cache))
	}
	return opts, nil
}

// executor returns what runs a node's storage commands: qemu-img on this
// host for the nodes whose storage is here, on the node over SSH for
// ssh:// nodes, a simulation for simulated nodes.
func (s *Server) executor(ctx context.Context, n model.Node) (storage.Executor, error) {
	switch n.Address {
	case "sim":
		return simnode.Executor{}, nil
	case "local":
		return storage.LocalExecutor{}, nil
	}
	if strings.HasPrefix(n.Address, "ssh://") {
		conn, _, err := s.sshNode(ctx, n)
		if err != nil {
			return nil, err
		}
		return conn.Executor(), nil
	}
	if _, err := s.hostAddress(n); err != nil {
		return nil, err
	}
	return storage.LocalExecutor{}, nil
}

// hostAddress reads the address of a node that is a libvirtd on this host
// (see model.LibvirtAddress); other addresses are remote node agents, which
// are not implemented.
func (s *Server) hostAddress(n model.Node) (model.LibvirtAddress, error) {
	la, ok, err := model.ParseLibvirtAddress("address", n.Address)
	if err != nil {
		return la, fmt.Errorf("node %s: %w", n.Name, err)
	}
	if !ok {
		return la, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: remote node agents (%s)", n.Name, n.Address)
	}
	if s.cfg.DataDir == "" {
		return la, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: nodes named by a libvirt socket keep files in the daemon's data directory, and it has none", n.Name)
	}
	return la, nil
}

// hostDir returns a directory under the daemon's data directory, made.
func (s *Server) hostDir(elem ...string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(append([]string{s.cfg.DataDir}, elem...)...))
	if err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// hostDriver opens the driver of a libvirtd on this host. All of them keep
// their per-machine files in one directory, as drivers of one host do: a
// machine moved between them finds its files where its domain says.
func (s *Server) hostDriver(n model.Node) (vmm.Driver, error) {
	la, err := s.hostAddress(n)
	if err != nil {
		return nil, err
	}
	dir, err := s.hostDir("vmm")
	if err != nil {
		return nil, err
	}
	return libvirt.New(libvirt.Config{Socket: la.Socket, StateDir: dir},
		libvirt.WithValues(libvirt.Values{DomainType: s.cfg.DomainType}), libvirt.WithLogger(s.cfg.Logger))
}

// hostStorage opens the file pool of a libvirtd on this host: the cluster's
// first file storage when it has one (a directory all its nodes see, such
// as an NFS mount: shared storage), else a directory of the node's own.
func (s *Server) hostStorage(n model.Node) (storage.Pool, error) {
	if _, err := s.hostAddress(n); err != nil {
		return nil, err
	}
	ref, ok, err := s.clusterFileStorage(context.Background(), n)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := os.MkdirAll(ref.Path, 0o755); err != nil {
			return nil, err
		}
		return file.New(file.Config{Name: ref.Name, Dir: ref.Path})
	}
	dir, err := s.hostDir("nodes", n.ID, "images")
	if err != nil {
		return nil, err
	}
	return file.New(file.Config{Name: "node", Dir: dir})
}

// clusterFileStorage returns the first file storage of n's cluster, if it
// has one.
func (s *Server) clusterFileStorage(ctx context.Context, n model.Node) (model.StorageRef, bool, error) {
	o, err := s.cfg.Store.GetObject(ctx, store.KindCluster, n.ClusterID)
	if err != nil {
		return model.StorageRef{}, false, err
	}
	var c model.Cluster
	if err := json.Unmarshal(o.Data, &c); err != nil {
		return model.StorageRef{}, false, err
	}
	for _, ref := range c.Storages {
		if ref.Driver == "file" && ref.Path != "" {
			return ref, true, nil
		}
	}
	return model.StorageRef{}, false, nil
}

// hostPorts opens the network ports of a libvirtd on this host: bridges,
// nftables and tc of the network namespace its address names (the daemon's
// own by default), with their records under the node's directory.
func (s *Server) hostPorts(n model.Node) (netport.Ports, error) {
	la, err := s.hostAddress(n)
	if err != nil {
		return nil, err
	}
	dir, err := s.hostDir("nodes", n.ID, "ports")
	if err != nil {
		return nil, err
	}
	var nl *netlink.Handle
	var nft *nftables.Conn
	if la.Netns == "" {
		nl, err = netlink.NewHandle()
		if err == nil {
			nft, err = nftables.New()
		}
	} else {
		var ns netns.NsHandle
		if ns, err = netns.GetFromName(la.Netns); err != nil {
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "node %s: network namespace %s: %v", n.Name, la.Netns, err)
		}
		// The handle stays open with the node's ports: nftables dials a
		// new netlink socket into it for every change.
		nl, err = netlink.NewHandleAt(ns)
		if err == nil {
			nft, err = nftables.New(nftables.WithNetNSFd(int(ns)))
		}
	}
	if err != nil {
		if nl != nil {
			nl.Close()
		}
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "node %s: netlink: %v", n.Name, err)
	}
	return netport.NewKernelHost(dir, nl, nft)
}

// migrationTarget tells the hypervisor of node from how to reach the one of
// node to for a live migration.
func (s *Server) migrationTarget(ctx context.Context, from, to model.Node) (vmm.MigrationTarget, error) {
	if from.Address == "sim" && to.Address == "sim" {
		src, err := s.driver(ctx, from)
		if err != nil {
			return vmm.MigrationTarget{}, err
		}
		dst, err := s.driver(ctx, to)
		if err != nil {
			return vmm.MigrationTarget{}, err
		}
		uri := "sim://" + to.ID
		src.(*simnode.Node).AddPeer(uri, dst.(*simnode.Node))
		return vmm.MigrationTarget{URI: uri}, nil
	}
	if _, ok := s.libvirtHere(from); ok {
		if la, ok := s.libvirtHere(to); ok {
			// Peer to peer: the source libvirtd opens the target's socket.
			return vmm.MigrationTarget{URI: la.URI, Address: la.MigrationAddress}, nil
		}
	}
	return vmm.MigrationTarget{}, virtplane.Errorf(virtplane.ErrNotImplemented, "live migration from node %s (%s) to node %s (%s)", from.Name, from.Address, to.Name, to.Address)
}

// libvirtHere returns the address of a node that is a libvirtd on this
// host: one named by its socket, or the local node when the daemon drives
// a local libvirtd (at Config.LocalLibvirtSocket).
func (s *Server) libvirtHere(n model.Node) (model.LibvirtAddress, bool) {
	if n.Address == "local" {
		if s.cfg.LocalDriver == nil {
			return model.LibvirtAddress{}, false
		}
		sock := s.cfg.LocalLibvirtSocket
		return model.LibvirtAddress{URI: "qemu+unix:///system?socket=" + sock, Socket: sock, MigrationAddress: s.cfg.LocalMigrationAddress}, true
	}
	la, err := s.hostAddress(n)
	return la, err == nil
}

// DataDir is where the daemon keeps files ("" for none).
func (s *Server) DataDir() string { return s.cfg.DataDir }

package daemon

import (
	"context"
	"path/filepath"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
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
// host for the nodes whose storage is here, a simulation for simulated
// nodes.
func (s *Server) executor(ctx context.Context, n model.Node) (storage.Executor, error) {
	switch n.Address {
	case "sim":
		return simnode.Executor{}, nil
	case "local":
		return storage.LocalExecutor{}, nil
	}
	return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: remote node agents (%s)", n.Name, n.Address)
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
	return vmm.MigrationTarget{}, virtplane.Errorf(virtplane.ErrNotImplemented, "live migration from node %s (%s) to node %s (%s)", from.Name, from.Address, to.Name, to.Address)
}

// DataDir is where the daemon keeps files ("" for none).
func (s *Server) DataDir() string { return s.cfg.DataDir }

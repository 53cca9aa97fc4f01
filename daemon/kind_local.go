package daemon

import (
	"context"
	"net"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/storage"
)

// localKind is this host, address "local": the drivers Config.Local*
// open (the local libvirtd or LXD, a file pool, this kernel's ports).
// LocalAddress is the address of this host's own node.
const LocalAddress = "local"

func (s *Server) localKind() node.Kind {
	facts := func(context.Context) (node.Facts, error) { return hostFacts(s.dataDirOrRoot()) }
	return node.Kind{
		Name: "local", Forms: "local (this host's libvirtd, or its LXD in an lxd cluster)",
		Parse: func(_, raw string) (any, string, bool, error) { return nil, "", raw == LocalAddress, nil },
		Prepare: func(ctx context.Context, _ string, _ node.Address, _ string, _ node.Credentials) (node.Facts, error) {
			return facts(ctx)
		},
		Open: func(ctx context.Context, t node.Target) (*node.Backend, error) {
			b := &node.Backend{Exec: storage.LocalExecutor{}, Facts: facts, Dial: (&net.Dialer{}).DialContext}
			var err error
			switch t.Cluster.VirtType {
			case model.VirtLXD:
				if s.cfg.LocalLXD == nil {
					return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: this daemon drives no local LXD", t.Node.Name)
				}
				b.VMM, err = s.cfg.LocalLXD(ctx)
			default:
				if s.cfg.LocalDriver == nil {
					return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: this daemon drives no local libvirtd", t.Node.Name)
				}
				if b.VMM, err = s.cfg.LocalDriver(ctx); err == nil {
					sock := s.cfg.LocalLibvirtSocket
					b.Handle = libvirtHere{URI: "qemu+unix:///system?socket=" + sock, MigrationAddress: s.cfg.LocalMigrationAddress}
					b.MigrateTo = migrateHere
				}
			}
			if err != nil {
				return nil, err
			}
			if s.cfg.LocalPorts != nil {
				if b.Ports, err = s.cfg.LocalPorts(ctx); err != nil {
					return nil, err
				}
			}
			if s.cfg.LocalStorage != nil {
				own, err := s.cfg.LocalStorage(ctx)
				if err != nil {
					return nil, err
				}
				b.OwnPool = func(context.Context) (storage.Pool, error) { return own, nil }
			}
			b.Pool = s.storage.hostPools()
			return b, nil
		},
	}
}

// dataDirOrRoot is the directory whose file system holds this host's VM
// disks, for its capacity.
func (s *Server) dataDirOrRoot() string {
	if s.cfg.DataDir != "" {
		return s.cfg.DataDir
	}
	return "/"
}

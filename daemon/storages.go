package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/opener"
)

// storageDrivers are the storage drivers of the daemon: those of
// storage/opener and Config.StorageDrivers, and the pools opened with
// them. Local storages of nodes on this host and the shared storages of
// every cluster (which the daemon reaches itself) open here; those of
// agent nodes open on the node, through its agent's registry.
type storageDrivers struct {
	reg  *opener.Registry
	exec storage.Executor

	mu    sync.Mutex
	pools map[string]storage.Pool // by spec
}

func newStorageDrivers(extra []opener.Driver) (*storageDrivers, error) {
	reg, err := opener.New(append(opener.Builtin(), extra...)...)
	if err != nil {
		return nil, err
	}
	return &storageDrivers{reg: reg, exec: storage.LocalExecutor{}, pools: map[string]storage.Pool{}}, nil
}

// open opens spec on this host, once per spec: a pool holds no state the
// next open would not rebuild, and Ceph keeps a connection.
func (d *storageDrivers) open(ctx context.Context, spec opener.Spec) (storage.Pool, error) {
	key, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pools[string(key)]; ok {
		return p, nil
	}
	p, err := d.reg.Open(ctx, spec, d.exec)
	if err != nil {
		return nil, err
	}
	d.pools[string(key)] = p
	return p, nil
}

// Shared implements flow.SharedStorages.
func (d *storageDrivers) Shared(driver string) bool { return d.reg.Shared(driver) }

// OpenShared implements flow.SharedStorages: the storage as the cluster
// declares it now.
func (d *storageDrivers) OpenShared(ctx context.Context, c model.Cluster, ref model.StorageRef) (storage.Pool, error) {
	return d.open(ctx, node.PoolSpec(ref))
}

// hostPools is Backend.Pool of nodes whose storage is this host's.
func (d *storageDrivers) hostPools() func(ctx context.Context, ref model.StorageRef) (storage.Pool, error) {
	return func(ctx context.Context, ref model.StorageRef) (storage.Pool, error) {
		return d.open(ctx, node.PoolSpec(ref))
	}
}

// storageAdmin is what the API needs to check cluster storages.
type storageAdmin struct{ s *Server }

// Drivers lists the storage drivers with their settings.
func (a storageAdmin) Drivers() []model.StorageDriver {
	var out []model.StorageDriver
	for _, name := range a.s.storage.reg.Names() {
		d, _ := a.s.storage.reg.Driver(name)
		v := model.StorageDriver{Name: d.Name, Shared: d.Shared, Path: d.Path, Options: []model.StorageOption{}}
		for _, o := range d.Options {
			v.Options = append(v.Options, model.StorageOption{Name: o.Name, Doc: o.Doc, Required: o.Required, Flag: o.Flag})
		}
		out = append(out, v)
	}
	return out
}

// Validate checks a storage's settings against its driver, without
// touching the backend. Errors are *model.FieldError relative to the
// storage (driver, path, options.NAME).
func (a storageAdmin) Validate(ref model.StorageRef) error {
	err := a.s.storage.reg.Validate(node.PoolSpec(ref))
	var se *opener.SpecError
	if errors.As(err, &se) {
		return &model.FieldError{Field: se.Field, Err: se.Err}
	}
	return err
}

// checkTimeout bounds the check of one storage on one node: a backend
// that does not answer (a Ceph monitor down) fails the change, it does
// not hang it.
const checkTimeout = 30 * time.Second

// Check opens a storage of cluster c where its VMs would use it, and
// reads its space: a shared one once, here; a local one on every node of
// the cluster. A volume group that is not there, a Ceph pool that does
// not exist, a portal that does not answer: the error says which node and
// what. Nothing is made (file storages make their directory).
func (a storageAdmin) Check(ctx context.Context, c model.Cluster, ref model.StorageRef) error {
	if err := a.Validate(ref); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if a.s.storage.Shared(ref.Driver) {
		if portal := ref.Options["portal"]; portal != "" {
			var dl net.Dialer
			conn, err := dl.DialContext(ctx, "tcp", portal)
			if err != nil {
				return &model.FieldError{Field: "options.portal", Err: virtplane.Errorf(virtplane.ErrInvalidArgument, "storage %s: portal %s does not answer: %v", ref.Name, portal, err)}
			}
			_ = conn.Close()
		}
		pool, err := a.s.storage.OpenShared(ctx, c, ref)
		if err == nil {
			_, err = pool.Info(ctx)
		}
		if err != nil {
			return &model.FieldError{Field: "path", Err: virtplane.Errorf(virtplane.ErrInvalidArgument, "storage %s (%s %s): %v", ref.Name, ref.Driver, ref.Path, err)}
		}
		return nil
	}
	var nodes []model.Node
	objs, err := a.s.cfg.Store.ListObjects(ctx, store.KindNode, store.ListOptions{Parent: c.ID})
	if err != nil {
		return err
	}
	for _, o := range objs {
		var n model.Node
		if err := json.Unmarshal(o.Data, &n); err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		b, err := a.s.Backend(ctx, n, c)
		if err != nil {
			return fmt.Errorf("storage %s: node %s: %w", ref.Name, n.Name, err)
		}
		if b.Simulated || b.Pool == nil {
			continue // a simulated node simulates every storage
		}
		pool, err := b.Pool(ctx, ref)
		if err == nil {
			_, err = pool.Info(ctx)
		}
		if err != nil {
			return &model.FieldError{Field: "path", Err: virtplane.Errorf(virtplane.ErrInvalidArgument, "storage %s (%s %s) on node %s: %v", ref.Name, ref.Driver, ref.Path, n.Name, err)}
		}
	}
	return nil
}

// CheckNode reaches the local storages of cluster c on node n, which is
// about to join it: a node without the cluster's volume group or
// directory would fail every create placed there.
func (a storageAdmin) CheckNode(ctx context.Context, n model.Node, c model.Cluster) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var b *node.Backend
	for _, ref := range c.Storages {
		if a.s.storage.Shared(ref.Driver) {
			continue
		}
		if b == nil {
			var err error
			if b, err = a.s.Backend(ctx, n, c); err != nil {
				return err
			}
			if b.Simulated || b.Pool == nil {
				return nil
			}
		}
		pool, err := b.Pool(ctx, ref)
		if err == nil {
			_, err = pool.Info(ctx)
		}
		if err != nil {
			return virtplane.Errorf(virtplane.ErrConflict, "node %s cannot reach storage %s of cluster %s (%s %s): %v", n.Name, ref.Name, c.Name, ref.Driver, ref.Path, err)
		}
	}
	return nil
}

// Usage reads the space of every storage of cluster c: a shared storage
// once, a local one on each node. A backend that cannot be read is listed
// with its error. connected, when set, says which nodes may be asked (a
// metrics scrape dials no node that is not connected yet).
func (a storageAdmin) Usage(ctx context.Context, c model.Cluster) ([]model.StorageUsage, error) {
	nodes, err := listAll[model.Node](ctx, a.s.cfg.Store, store.KindNode)
	if err != nil {
		return nil, err
	}
	vms, err := listAll[model.VM](ctx, a.s.cfg.Store, store.KindVM)
	if err != nil {
		return nil, err
	}
	return a.s.storageUsage(ctx, c, nodes, vms, false), nil
}

// storageUsage is Usage over the nodes and VMs the caller read (a metrics
// scrape reads them once for every cluster).
func (s *Server) storageUsage(ctx context.Context, c model.Cluster, nodes []model.Node, vms []model.VM, connectedOnly bool) []model.StorageUsage {
	out := []model.StorageUsage{}
	sharedDone := map[string]bool{}
	for _, n := range nodes {
		if n.ClusterID != c.ID {
			continue
		}
		b, err := s.usageBackend(ctx, n, c, connectedOnly)
		for _, ref := range c.Storages {
			u := model.StorageUsage{Storage: ref.Name, Driver: ref.Driver, Node: n.ID}
			if err == nil && s.Flow.IsShared(b, ref.Driver) {
				if sharedDone[ref.Name] {
					continue
				}
				sharedDone[ref.Name], u.Node = true, ""
			}
			for _, vm := range vms {
				if vm.ClusterID == c.ID && vm.UsesStorage(ref.Name) && (u.Node == "" || vm.NodeID == n.ID) {
					u.VMs++
				}
			}
			if err != nil {
				u.Error = err.Error()
				out = append(out, u)
				continue
			}
			pool, perr := s.Flow.OpenStorage(ctx, n, b, c, ref)
			var info storage.PoolInfo
			if perr == nil {
				info, perr = pool.Info(ctx)
			}
			if perr != nil {
				u.Error = perr.Error()
			}
			u.CapacityBytes, u.UsedBytes, u.AllocatedBytes = info.Capacity, info.Used, info.Allocated
			out = append(out, u)
		}
	}
	return out
}

// usageBackend is the backend of node n for a usage read; with
// connectedOnly, only one already open.
func (s *Server) usageBackend(ctx context.Context, n model.Node, c model.Cluster, connectedOnly bool) (*node.Backend, error) {
	if !connectedOnly {
		return s.Backend(ctx, n, c)
	}
	s.mu.Lock()
	e, ok := s.backends[n.ID]
	s.mu.Unlock()
	if !ok {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "node %s is not connected yet", n.Name)
	}
	return e.b, nil
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/opener"
)

// PoolSpec is a storage pool the controller asks a node to open: a
// cluster's storage, by driver and where it keeps data.
type PoolSpec = opener.Spec

// PoolOpener opens the pool spec describes on this node; ex is the node's
// executor (nil: none configured).
type PoolOpener func(ctx context.Context, spec PoolSpec, ex storage.Executor) (storage.Pool, error)

// FileOpener opens a file pool (storage/file) in spec.Path, creating the
// directory when it is missing. It takes no options.
func FileOpener(ctx context.Context, spec PoolSpec, ex storage.Executor) (storage.Pool, error) {
	if err := NoOptions(spec); err != nil {
		return nil, err
	}
	if err := storage.ValidatePath("pool "+spec.Name+" path", spec.Path); err != nil {
		return nil, err
	}
	return opener.File().Open(ctx, spec, ex)
}

// NoOptions refuses a spec with options, for openers that take none.
func NoOptions(spec PoolSpec) error {
	if len(spec.Options) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(spec.Options))
	return virtplane.Errorf(virtplane.ErrInvalidArgument, "pool %s: driver %s takes no options (got %s)", spec.Name, spec.Driver, strings.Join(names, ", "))
}

// storageCapabilities are the optional interfaces of package storage by name.
func storageCapabilities() map[string]reflect.Type {
	return map[string]reflect.Type{
		"Resizer":     reflect.TypeFor[storage.Resizer](),
		"Cloner":      reflect.TypeFor[storage.Cloner](),
		"Snapshotter": reflect.TypeFor[storage.Snapshotter](),
		"Activator":   reflect.TypeFor[storage.Activator](),
	}
}

// openPool is a pool of the node: given from the start (spec nil) or
// opened by a controller.
type openPool struct {
	pool storage.Pool
	spec *PoolSpec
}

func (p *openPool) capabilities() []string {
	return append([]string{"Pool"}, implemented(p.pool, storageCapabilities())...)
}

// The requests of the pool methods.
type (
	poolOnly   struct{ Pool string }
	poolCreate struct {
		Pool string
		Spec storage.VolumeSpec
	}
	poolVolume struct{ Pool, Name string }
	poolResize struct {
		Pool, Name string
		Size       int64
		Options    storage.ResizeOptions
	}
	poolClone struct {
		Pool, Src, Dst string
		Mode           storage.CloneMode
	}
	poolSnapshot struct{ Pool, Volume, Snapshot string }
	poolOpen     struct{ Spec PoolSpec }
	poolOpened   struct{ Capabilities []string }
)

func (s *Server) pool(name string) (storage.Pool, error) {
	if err := storage.ValidateName("pool name", name); err != nil {
		return nil, err
	}
	s.poolsMu.RLock()
	p, ok := s.pools[name]
	s.poolsMu.RUnlock()
	if !ok {
		return nil, reasoned(reasonPoolNotOpen, virtplane.ErrNotFound, "agent: pool %q is not open on the node", name)
	}
	return p.pool, nil
}

// poolAs returns the named pool as T, or ErrNotImplemented naming what it lacks.
func poolAs[T any](s *Server, name, capability string) (T, error) {
	var zero T
	p, err := s.pool(name)
	if err != nil {
		return zero, err
	}
	t, ok := storage.As[T](p)
	if !ok {
		return zero, virtplane.Errorf(virtplane.ErrNotImplemented, "agent: pool %q has no %s", name, capability)
	}
	return t, nil
}

// poolCall is a pool method of T answering Out; pool names the pool of in.
func poolCall[T, In, Out any](s *Server, capability string, pool func(In) string, f func(ctx context.Context, p T, in In) (Out, error)) unaryMethod {
	return unary(func(ctx context.Context, in In) (Out, error) {
		p, err := poolAs[T](s, pool(in), capability)
		if err != nil {
			var zero Out
			return zero, err
		}
		return f(ctx, p, in)
	})
}

func poolDo[T, In any](s *Server, capability string, pool func(In) string, f func(ctx context.Context, p T, in In) error) unaryMethod {
	return poolCall(s, capability, pool, func(ctx context.Context, p T, in In) (done, error) { return done{}, f(ctx, p, in) })
}

func (s *Server) registerStorage() {
	const base = "Pool"
	onlyPool := func(in poolOnly) string { return in.Pool }
	volPool := func(in poolVolume) string { return in.Pool }
	snapPool := func(in poolSnapshot) string { return in.Pool }
	s.addUnary("pool/Info", poolCall(s, base, onlyPool, func(ctx context.Context, p storage.Pool, _ poolOnly) (storage.PoolInfo, error) { return p.Info(ctx) }))
	s.addUnary("pool/Create", poolCall(s, base, func(in poolCreate) string { return in.Pool }, func(ctx context.Context, p storage.Pool, in poolCreate) (storage.Volume, error) {
		return p.Create(ctx, in.Spec)
	}))
	s.addUnary("pool/Volume", poolCall(s, base, volPool, func(ctx context.Context, p storage.Pool, in poolVolume) (storage.Volume, error) {
		return p.Volume(ctx, in.Name)
	}))
	s.addUnary("pool/List", poolCall(s, base, onlyPool, func(ctx context.Context, p storage.Pool, _ poolOnly) ([]storage.Volume, error) { return p.List(ctx) }))
	s.addUnary("pool/Delete", poolDo(s, base, volPool, func(ctx context.Context, p storage.Pool, in poolVolume) error { return p.Delete(ctx, in.Name) }))
	s.addUnary("pool/Resize", poolCall(s, "Resizer", func(in poolResize) string { return in.Pool }, func(ctx context.Context, p storage.Resizer, in poolResize) (storage.Volume, error) {
		return p.Resize(ctx, in.Name, in.Size, in.Options)
	}))
	s.addUnary("pool/Clone", poolCall(s, "Cloner", func(in poolClone) string { return in.Pool }, func(ctx context.Context, p storage.Cloner, in poolClone) (storage.Volume, error) {
		return p.Clone(ctx, in.Src, in.Dst, in.Mode)
	}))
	s.addUnary("pool/CreateSnapshot", poolCall(s, "Snapshotter", snapPool, func(ctx context.Context, p storage.Snapshotter, in poolSnapshot) (storage.Snapshot, error) {
		return p.CreateSnapshot(ctx, in.Volume, in.Snapshot)
	}))
	s.addUnary("pool/ListSnapshots", poolCall(s, "Snapshotter", volPool, func(ctx context.Context, p storage.Snapshotter, in poolVolume) ([]storage.Snapshot, error) {
		return p.ListSnapshots(ctx, in.Name)
	}))
	s.addUnary("pool/RevertSnapshot", poolDo(s, "Snapshotter", snapPool, func(ctx context.Context, p storage.Snapshotter, in poolSnapshot) error {
		return p.RevertSnapshot(ctx, in.Volume, in.Snapshot)
	}))
	s.addUnary("pool/DeleteSnapshot", poolDo(s, "Snapshotter", snapPool, func(ctx context.Context, p storage.Snapshotter, in poolSnapshot) error {
		return p.DeleteSnapshot(ctx, in.Volume, in.Snapshot)
	}))
	s.addUnary("pool/Activate", poolDo(s, "Activator", volPool, func(ctx context.Context, p storage.Activator, in poolVolume) error { return p.Activate(ctx, in.Name) }))
	s.addUnary("pool/Deactivate", poolDo(s, "Activator", volPool, func(ctx context.Context, p storage.Activator, in poolVolume) error { return p.Deactivate(ctx, in.Name) }))
	s.addUnary("pools/Open", unary(func(ctx context.Context, in poolOpen) (poolOpened, error) {
		p, err := s.openPool(ctx, in.Spec)
		if err != nil {
			return poolOpened{}, err
		}
		return poolOpened{Capabilities: p.capabilities()}, nil
	}))
}

// openPool opens spec, or returns the pool already open under its name
// with the same spec (opening is idempotent, so a controller may open its
// cluster's storages again after any doubt).
func (s *Server) openPool(ctx context.Context, spec PoolSpec) (*openPool, error) {
	if err := storage.ValidateName("pool name", spec.Name); err != nil {
		return nil, err
	}
	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.poolsMu.RLock()
	cur, ok := s.pools[spec.Name]
	s.poolsMu.RUnlock()
	if ok {
		if cur.spec != nil && cur.spec.Equal(spec) {
			return cur, nil
		}
		return nil, virtplane.Errorf(virtplane.ErrConflict, "agent: pool %q is open already, with another spec", spec.Name)
	}
	open, ok := s.openers[spec.Driver]
	if !ok {
		drivers := slices.Sorted(maps.Keys(s.openers))
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "agent: pool %s: no driver %q on this node (it has %s)", spec.Name, spec.Driver, strings.Join(drivers, ", "))
	}
	p, err := open(ctx, spec, s.node.Exec)
	if err != nil {
		return nil, fmt.Errorf("agent: open pool %s (%s): %w", spec.Name, spec.Driver, err)
	}
	if p == nil {
		return nil, fmt.Errorf("agent: open pool %s: the %s opener returned no pool", spec.Name, spec.Driver)
	}
	kept := spec
	kept.Tags, kept.Options = maps.Clone(spec.Tags), maps.Clone(spec.Options)
	op := &openPool{pool: p, spec: &kept}
	s.poolsMu.Lock()
	s.pools[spec.Name] = op
	s.poolsMu.Unlock()
	s.log.Info("agent: pool opened", "pool", spec.Name, "driver", spec.Driver, "path", spec.Path)
	return op, nil
}

// poolNames returns the names of the open pools, sorted.
func (s *Server) poolNames() []string {
	s.poolsMu.RLock()
	defer s.poolsMu.RUnlock()
	names := make([]string, 0, len(s.pools))
	for n := range s.pools {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Pool returns the node's pool called name, as a storage.Pool (a pool the
// node does not have answers ErrNotFound). It implements every optional
// storage interface and reports, to storage.As, those the pool on the node
// has.
func (c *Client) Pool(name string) storage.Pool { return &remotePool{c: c, name: name} }

// OpenPool opens a pool on the node by driver and settings, and returns
// it. Opening the same spec again returns the same pool; another spec
// under an open pool's name is ErrConflict; a driver the node does not
// have is ErrNotImplemented. The client remembers what it opened, and
// opens it again when the agent restarted and lost it.
func (c *Client) OpenPool(ctx context.Context, spec PoolSpec) (storage.Pool, error) {
	if err := c.openPool(ctx, spec); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.opened[spec.Name] = spec
	c.mu.Unlock()
	return c.Pool(spec.Name), nil
}

func (c *Client) openPool(ctx context.Context, spec PoolSpec) error {
	var out poolOpened
	// Idempotent on the agent: safe to send again.
	if err := c.call(ctx, "pools/Open", read, poolOpen{Spec: spec}, &out); err != nil {
		return err
	}
	c.mu.Lock()
	c.poolCaps[spec.Name] = out.Capabilities
	c.mu.Unlock()
	return nil
}

// remotePool is a pool of the node through the agent.
type remotePool struct {
	c    *Client
	name string
}

var (
	_ storage.Pool               = (*remotePool)(nil)
	_ storage.Resizer            = (*remotePool)(nil)
	_ storage.Cloner             = (*remotePool)(nil)
	_ storage.Snapshotter        = (*remotePool)(nil)
	_ storage.Activator          = (*remotePool)(nil)
	_ storage.CapabilityReporter = (*remotePool)(nil)
)

// HasCapability implements storage.CapabilityReporter.
func (p *remotePool) HasCapability(t reflect.Type) bool {
	caps, ok := p.c.poolCapabilities(p.name)
	if !ok {
		return false
	}
	name, optional := capabilityName(storageCapabilities(), t)
	return !optional || slices.Contains(caps, name)
}

// poolCapabilities returns what the client knows of a pool's interfaces
// (refreshing it as capabilities does).
func (c *Client) poolCapabilities(name string) ([]string, bool) {
	if c.capabilities() == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	caps, ok := c.poolCaps[name]
	return caps, ok
}

// call makes a pool call; when the agent lost a pool this client opened
// (it restarted), the pool is opened again and the call sent once more.
func (p *remotePool) call(ctx context.Context, method string, idempotent bool, in, out any) error {
	err := p.c.call(ctx, method, idempotent, in, out)
	var re *RemoteError
	if err == nil || !errors.As(err, &re) || re.reason != reasonPoolNotOpen {
		return err
	}
	p.c.mu.Lock()
	spec, ok := p.c.opened[p.name]
	p.c.mu.Unlock()
	if !ok {
		return err
	}
	p.c.log.Info("agent: opening a pool the agent lost", "node", p.c.cfg.Node, "pool", p.name)
	if oerr := p.c.openPool(ctx, spec); oerr != nil {
		return fmt.Errorf("%w (opening it again: %v)", err, oerr)
	}
	return p.c.call(ctx, method, idempotent, in, out)
}

func (p *remotePool) Info(ctx context.Context) (storage.PoolInfo, error) {
	var out storage.PoolInfo
	err := p.call(ctx, "pool/Info", read, poolOnly{Pool: p.name}, &out)
	return out, err
}

func (p *remotePool) Create(ctx context.Context, spec storage.VolumeSpec) (storage.Volume, error) {
	var out storage.Volume
	err := p.call(ctx, "pool/Create", write, poolCreate{Pool: p.name, Spec: spec}, &out)
	return out, err
}

func (p *remotePool) Volume(ctx context.Context, name string) (storage.Volume, error) {
	var out storage.Volume
	err := p.call(ctx, "pool/Volume", read, poolVolume{Pool: p.name, Name: name}, &out)
	return out, err
}

func (p *remotePool) List(ctx context.Context) ([]storage.Volume, error) {
	var out []storage.Volume
	err := p.call(ctx, "pool/List", read, poolOnly{Pool: p.name}, &out)
	return out, err
}

func (p *remotePool) Delete(ctx context.Context, name string) error {
	return p.call(ctx, "pool/Delete", write, poolVolume{Pool: p.name, Name: name}, nil)
}

func (p *remotePool) Resize(ctx context.Context, name string, size int64, opts storage.ResizeOptions) (storage.Volume, error) {
	var out storage.Volume
	err := p.call(ctx, "pool/Resize", write, poolResize{Pool: p.name, Name: name, Size: size, Options: opts}, &out)
	return out, err
}

func (p *remotePool) Clone(ctx context.Context, src, dst string, mode storage.CloneMode) (storage.Volume, error) {
	var out storage.Volume
	err := p.call(ctx, "pool/Clone", write, poolClone{Pool: p.name, Src: src, Dst: dst, Mode: mode}, &out)
	return out, err
}

func (p *remotePool) CreateSnapshot(ctx context.Context, volume, snapshot string) (storage.Snapshot, error) {
	var out storage.Snapshot
	err := p.call(ctx, "pool/CreateSnapshot", write, poolSnapshot{Pool: p.name, Volume: volume, Snapshot: snapshot}, &out)
	return out, err
}

func (p *remotePool) ListSnapshots(ctx context.Context, volume string) ([]storage.Snapshot, error) {
	var out []storage.Snapshot
	err := p.call(ctx, "pool/ListSnapshots", read, poolVolume{Pool: p.name, Name: volume}, &out)
	return out, err
}

func (p *remotePool) RevertSnapshot(ctx context.Context, volume, snapshot string) error {
	return p.call(ctx, "pool/RevertSnapshot", write, poolSnapshot{Pool: p.name, Volume: volume, Snapshot: snapshot}, nil)
}

func (p *remotePool) DeleteSnapshot(ctx context.Context, volume, snapshot string) error {
	return p.call(ctx, "pool/DeleteSnapshot", write, poolSnapshot{Pool: p.name, Volume: volume, Snapshot: snapshot}, nil)
}

func (p *remotePool) Activate(ctx context.Context, name string) error {
	return p.call(ctx, "pool/Activate", write, poolVolume{Pool: p.name, Name: name}, nil)
}

func (p *remotePool) Deactivate(ctx context.Context, name string) error {
	return p.call(ctx, "pool/Deactivate", write, poolVolume{Pool: p.name, Name: name}, nil)
}

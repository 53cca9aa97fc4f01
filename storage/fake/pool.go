package fake

import (
	"context"
	"maps"
	"path"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// Pool is an in-memory storage pool with every capability. It holds the
// same rules the real drivers do (a parent of a linked clone cannot be
// deleted, shrinking needs AllowShrink, names are validated), records every
// call and fails the operations it is told to.
type Pool struct {
	name string
	tags map[string]string
	now  func() time.Time

	mu     sync.Mutex
	vols   map[string]*volume
	calls  []Call
	faults map[string]error
}

type volume struct {
	v     storage.Volume
	snaps []storage.Snapshot
}

// Call is one recorded method call: the operation and its name arguments.
type Call struct {
	Op   string // "Create", "Delete", "Clone", ...
	Args []string
}

var (
	_ storage.Pool        = (*Pool)(nil)
	_ storage.Resizer     = (*Pool)(nil)
	_ storage.Cloner      = (*Pool)(nil)
	_ storage.Snapshotter = (*Pool)(nil)
)

// Capacity is the size the fake pool reports as its capacity.
const Capacity = 1 << 40

// New returns an empty pool with the given name and tags.
func New(name string, tags map[string]string) *Pool {
	return &Pool{name: name, tags: maps.Clone(tags), now: time.Now, vols: map[string]*volume{}, faults: map[string]error{}}
}

// Fail makes every later call of op ("Create", "Clone", ...) return err,
// until Fail(op, nil).
func (p *Pool) Fail(op string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		delete(p.faults, op)
		return
	}
	p.faults[op] = err
}

// Calls returns the calls made so far.
func (p *Pool) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// begin records a call and returns its injected fault. p.mu must be held.
func (p *Pool) begin(ctx context.Context, op string, args ...string) error {
	p.calls = append(p.calls, Call{Op: op, Args: args})
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.faults[op]
}

func (p *Pool) attachment(name string) storage.Attachment {
	return storage.Attachment{Kind: storage.KindFile, Path: path.Join("/fake", p.name, name), Format: string(storage.FormatQcow2)}
}

// Info implements storage.Pool.
func (p *Pool) Info(ctx context.Context) (storage.PoolInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "Info"); err != nil {
		return storage.PoolInfo{}, err
	}
	info := storage.PoolInfo{Name: p.name, Driver: "fake", Tags: maps.Clone(p.tags),
		Formats: []storage.Format{storage.FormatQcow2, storage.FormatRaw}, Capacity: Capacity}
	for _, v := range p.vols {
		info.Allocated += v.v.Capacity
		info.Used += v.v.Allocated
	}
	return info, nil
}

// Create implements storage.Pool.
func (p *Pool) Create(ctx context.Context, spec storage.VolumeSpec) (storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "Create", spec.Name); err != nil {
		return storage.Volume{}, err
	}
	spec, err := storage.ValidateSpec(spec, []storage.Format{storage.FormatQcow2, storage.FormatRaw})
	if err != nil {
		return storage.Volume{}, err
	}
	if _, ok := p.vols[spec.Name]; ok {
		return storage.Volume{}, storage.AlreadyExists(p.name, spec.Name)
	}
	v := storage.Volume{Name: spec.Name, Pool: p.name, Format: spec.Format, Capacity: spec.Size, Attachment: p.attachment(spec.Name)}
	v.Attachment.Format = string(spec.Format)
	p.vols[spec.Name] = &volume{v: v}
	return v, nil
}

func (p *Pool) lookup(name string) (*volume, error) {
	if err := storage.ValidateName("volume name", name); err != nil {
		return nil, err
	}
	v, ok := p.vols[name]
	if !ok {
		return nil, storage.NotFound(p.name, name)
	}
	return v, nil
}

// Volume implements storage.Pool.
func (p *Pool) Volume(ctx context.Context, name string) (storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "Volume", name); err != nil {
		return storage.Volume{}, err
	}
	v, err := p.lookup(name)
	if err != nil {
		return storage.Volume{}, err
	}
	return v.v, nil
}

// List implements storage.Pool.
func (p *Pool) List(ctx context.Context) ([]storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "List"); err != nil {
		return nil, err
	}
	out := make([]storage.Volume, 0, len(p.vols))
	for _, v := range p.vols {
		out = append(out, v.v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete implements storage.Pool.
func (p *Pool) Delete(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "Delete", name); err != nil {
		return err
	}
	if _, err := p.lookup(name); err != nil {
		return err
	}
	for _, o := range p.vols {
		if o.v.Parent == name {
			return virtplane.Errorf(virtplane.ErrConflict, "pool %q: volume %q is the parent of linked clone %q", p.name, name, o.v.Name)
		}
	}
	delete(p.vols, name)
	return nil
}

// Resize implements storage.Resizer.
func (p *Pool) Resize(ctx context.Context, name string, size int64, opts storage.ResizeOptions) (storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "Resize", name); err != nil {
		return storage.Volume{}, err
	}
	v, err := p.lookup(name)
	if err != nil {
		return storage.Volume{}, err
	}
	if size <= 0 {
		return storage.Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "volume %q: size %d must be positive", name, size)
	}
	if size < v.v.Capacity && !opts.AllowShrink {
		return storage.Volume{}, storage.ShrinkRefused(name, v.v.Capacity, size)
	}
	v.v.Capacity = size
	return v.v, nil
}

// Clone implements storage.Cloner.
func (p *Pool) Clone(ctx context.Context, src, dst string, mode storage.CloneMode) (storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "Clone", src, dst, mode.String()); err != nil {
		return storage.Volume{}, err
	}
	s, err := p.lookup(src)
	if err != nil {
		return storage.Volume{}, err
	}
	if err := storage.ValidateName("clone name", dst); err != nil {
		return storage.Volume{}, err
	}
	if _, ok := p.vols[dst]; ok {
		return storage.Volume{}, storage.AlreadyExists(p.name, dst)
	}
	v := s.v
	v.Name, v.Attachment = dst, p.attachment(dst)
	v.Attachment.Format = string(v.Format)
	v.Parent = ""
	if mode == storage.CloneLinked {
		v.Parent = src
		v.Allocated = 0
	}
	p.vols[dst] = &volume{v: v}
	return v, nil
}

// CreateSnapshot implements storage.Snapshotter.
func (p *Pool) CreateSnapshot(ctx context.Context, vol, snap string) (storage.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "CreateSnapshot", vol, snap); err != nil {
		return storage.Snapshot{}, err
	}
	v, err := p.lookup(vol)
	if err != nil {
		return storage.Snapshot{}, err
	}
	if err := storage.ValidateName("snapshot name", snap); err != nil {
		return storage.Snapshot{}, err
	}
	if slices.ContainsFunc(v.snaps, func(s storage.Snapshot) bool { return s.Name == snap }) {
		return storage.Snapshot{}, virtplane.Errorf(virtplane.ErrAlreadyExists, "pool %q: volume %q: snapshot %q", p.name, vol, snap)
	}
	s := storage.Snapshot{Name: snap, Volume: vol, Created: p.now()}
	v.snaps = append(v.snaps, s)
	return s, nil
}

// ListSnapshots implements storage.Snapshotter.
func (p *Pool) ListSnapshots(ctx context.Context, vol string) ([]storage.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "ListSnapshots", vol); err != nil {
		return nil, err
	}
	v, err := p.lookup(vol)
	if err != nil {
		return nil, err
	}
	return slices.Clone(v.snaps), nil
}

func (p *Pool) snapIndex(vol, snap string) (*volume, int, error) {
	v, err := p.lookup(vol)
	if err != nil {
		return nil, 0, err
	}
	if err := storage.ValidateName("snapshot name", snap); err != nil {
		return nil, 0, err
	}
	i := slices.IndexFunc(v.snaps, func(s storage.Snapshot) bool { return s.Name == snap })
	if i < 0 {
		return nil, 0, storage.SnapshotNotFound(p.name, vol, snap)
	}
	return v, i, nil
}

// RevertSnapshot implements storage.Snapshotter.
func (p *Pool) RevertSnapshot(ctx context.Context, vol, snap string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "RevertSnapshot", vol, snap); err != nil {
		return err
	}
	_, _, err := p.snapIndex(vol, snap)
	return err
}

// DeleteSnapshot implements storage.Snapshotter.
func (p *Pool) DeleteSnapshot(ctx context.Context, vol, snap string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(ctx, "DeleteSnapshot", vol, snap); err != nil {
		return err
	}
	v, i, err := p.snapIndex(vol, snap)
	if err != nil {
		return err
	}
	v.snaps = slices.Delete(v.snaps, i, i+1)
	return nil
}

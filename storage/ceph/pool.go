//go:build ceph

package ceph

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/storage"
)

// Config is what an RBD pool needs.
type Config struct {
	Name string            // virtplane pool name
	Pool string            // RADOS pool holding the images
	Conf string            // ceph.conf path; empty = librados' default search
	User string            // cephx user without "client."; empty = "admin"
	Tags map[string]string // pool labels
	// Monitors and Secret go into every Attachment, for QEMU to reach the
	// cluster ("host:port"; the libvirt secret UUID holding User's key).
	Monitors []string
	Secret   string
	// OpTimeout bounds every librados call (go-ceph calls take no context);
	// 0 means 30 s.
	OpTimeout time.Duration
}

// Pool is an RBD pool. Its methods check the context before each librados
// call; a call in flight is bounded by Config.OpTimeout.
type Pool struct {
	cfg   Config
	conn  *rados.Conn
	ioctx *rados.IOContext
	mu    sync.Mutex // serialises changes (clone vs delete of the parent)

	// fault, when set by a test, is called before each step of a
	// multi-step operation and fails it by returning an error.
	fault func(step string) error
}

var (
	_ storage.Pool        = (*Pool)(nil)
	_ storage.Resizer     = (*Pool)(nil)
	_ storage.Cloner      = (*Pool)(nil)
	_ storage.Snapshotter = (*Pool)(nil)
)

// New connects to the cluster and opens the RADOS pool.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	if err := storage.ValidateName("pool name", cfg.Name); err != nil {
		return nil, err
	}
	if err := storage.ValidateName("rados pool", cfg.Pool); err != nil {
		return nil, err
	}
	if cfg.User == "" {
		cfg.User = "admin"
	}
	if err := storage.ValidateName("ceph user", cfg.User); err != nil {
		return nil, err
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = 30 * time.Second
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := rados.NewConnWithUser(cfg.User)
	if err != nil {
		return nil, fmt.Errorf("ceph: %w: %v", virtplane.ErrUnavailable, err)
	}
	if cfg.Conf != "" {
		err = conn.ReadConfigFile(cfg.Conf)
	} else {
		err = conn.ReadDefaultConfigFile()
	}
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ceph conf %q: %v", cfg.Conf, err)
	}
	secs := fmt.Sprint(int(cfg.OpTimeout.Seconds()))
	for _, opt := range []string{"rados_osd_op_timeout", "rados_mon_op_timeout", "client_mount_timeout"} {
		if err := conn.SetConfigOption(opt, secs); err != nil {
			return nil, fmt.Errorf("ceph: %s: %w", opt, err)
		}
	}
	if err := conn.Connect(); err != nil {
		return nil, fmt.Errorf("ceph: connect: %w: %v", virtplane.ErrUnavailable, err)
	}
	ioctx, err := conn.OpenIOContext(cfg.Pool)
	if err != nil {
		conn.Shutdown()
		return nil, virtplane.Errorf(virtplane.ErrNotFound, "rados pool %q: %v", cfg.Pool, err)
	}
	cfg.Tags = maps.Clone(cfg.Tags)
	return &Pool{cfg: cfg, conn: conn, ioctx: ioctx}, nil
}

// Close releases the cluster connection.
func (p *Pool) Close() error {
	p.ioctx.Destroy()
	p.conn.Shutdown()
	return nil
}

// IOContext exposes the pool's RADOS I/O context, for callers that need
// go-ceph directly (benchmarks compare against the bare library).
func (p *Pool) IOContext() *rados.IOContext { return p.ioctx }

func (p *Pool) step(name string) error {
	if p.fault != nil {
		return p.fault(name)
	}
	return nil
}

// cephErr classifies a go-ceph error.
func (p *Pool) cephErr(op, name string, err error) error {
	switch {
	case errors.Is(err, rbd.ErrNotFound), errors.Is(err, rbd.ErrNotExist):
		return storage.NotFound(p.cfg.Name, name)
	case errors.Is(err, rbd.ErrExist):
		return storage.AlreadyExists(p.cfg.Name, name)
	}
	return fmt.Errorf("%s %q: %w: %v", op, name, virtplane.ErrUnavailable, err)
}

func (p *Pool) attachment(name string) storage.Attachment {
	return storage.Attachment{Kind: storage.KindRBD, Format: string(storage.FormatRaw), Pool: p.cfg.Pool, Image: name,
		Monitors: append([]string(nil), p.cfg.Monitors...), User: p.cfg.User, Secret: p.cfg.Secret}
}

// Info implements storage.Pool.
func (p *Pool) Info(ctx context.Context) (storage.PoolInfo, error) {
	info := storage.PoolInfo{Name: p.cfg.Name, Driver: "ceph", Tags: maps.Clone(p.cfg.Tags), Formats: []storage.Format{storage.FormatRaw}}
	if err := ctx.Err(); err != nil {
		return info, err
	}
	cs, err := p.conn.GetClusterStats()
	if err != nil {
		return info, fmt.Errorf("ceph: cluster stats: %w: %v", virtplane.ErrUnavailable, err)
	}
	info.Capacity = int64(cs.Kb) * 1024
	ps, err := p.ioctx.GetPoolStats()
	if err != nil {
		return info, fmt.Errorf("ceph: pool stats: %w: %v", virtplane.ErrUnavailable, err)
	}
	info.Used = int64(ps.Num_bytes)
	vols, err := p.List(ctx)
	if err != nil {
		return info, err
	}
	for _, v := range vols {
		info.Allocated += v.Capacity
	}
	return info, nil
}

func (p *Pool) stat(ctx context.Context, name string) (storage.Volume, error) {
	if err := ctx.Err(); err != nil {
		return storage.Volume{}, err
	}
	img, err := rbd.OpenImageReadOnly(p.ioctx, name, rbd.NoSnapshot)
	if err != nil {
		return storage.Volume{}, p.cephErr("open", name, err)
	}
	defer img.Close()
	size, err := img.GetSize()
	if err != nil {
		return storage.Volume{}, p.cephErr("stat", name, err)
	}
	v := storage.Volume{Name: name, Pool: p.cfg.Name, Format: storage.FormatRaw, Capacity: int64(size), Attachment: p.attachment(name)}
	parent, err := img.GetParent()
	switch {
	case err == nil:
		v.Parent = parent.Image.ImageName
	case errors.Is(err, rbd.ErrNotFound), errors.Is(err, rbd.ErrNotExist):
	default:
		return storage.Volume{}, p.cephErr("parent of", name, err)
	}
	return v, nil
}

// Volume implements storage.Pool.
func (p *Pool) Volume(ctx context.Context, name string) (storage.Volume, error) {
	if err := storage.ValidateName("volume name", name); err != nil {
		return storage.Volume{}, err
	}
	return p.stat(ctx, name)
}

// List implements storage.Pool.
func (p *Pool) List(ctx context.Context) ([]storage.Volume, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names, err := rbd.GetImageNames(p.ioctx)
	if err != nil {
		return nil, fmt.Errorf("ceph: list: %w: %v", virtplane.ErrUnavailable, err)
	}
	sort.Strings(names)
	out := []storage.Volume{}
	for _, n := range names {
		if storage.ValidateName("volume name", n) != nil {
			continue // an image made outside virtplane with a name it would refuse
		}
		v, err := p.stat(ctx, n)
		if errors.Is(err, virtplane.ErrNotFound) {
			continue // removed while listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Create implements storage.Pool.
func (p *Pool) Create(ctx context.Context, spec storage.VolumeSpec) (storage.Volume, error) {
	spec, err := storage.ValidateSpec(spec, []storage.Format{storage.FormatRaw})
	if err != nil {
		return storage.Volume{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	opts := rbd.NewRbdImageOptions()
	defer opts.Destroy()
	if err := opts.SetUint64(rbd.ImageOptionFeatures, features); err != nil {
		return storage.Volume{}, err
	}
	if err := rbd.CreateImage(p.ioctx, spec.Name, uint64(spec.Size), opts); err != nil {
		return storage.Volume{}, p.cephErr("create", spec.Name, err)
	}
	return p.stat(ctx, spec.Name)
}

// features of new images: layering for clones; exclusive-lock, object-map
// and fast-diff so QEMU can track allocation cheaply.
const features = rbd.FeatureLayering | rbd.FeatureExclusiveLock | rbd.FeatureObjectMap | rbd.FeatureFastDiff | rbd.FeatureDeepFlatten

const cloneSnapPrefix = ".clone-"

// Delete implements storage.Pool. User snapshots go with the volume; a
// volume with linked clones is refused; deleting a linked clone also
// removes the protected snapshot its parent kept for it.
func (p *Pool) Delete(ctx context.Context, name string) error {
	if err := storage.ValidateName("volume name", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	img, err := rbd.OpenImage(p.ioctx, name, rbd.NoSnapshot)
	if err != nil {
		return p.cephErr("open", name, err)
	}
	closeImg := func() {
		if img != nil {
			img.Close()
			img = nil
		}
	}
	defer closeImg()
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		return p.cephErr("list snapshots of", name, err)
	}
	for _, s := range snaps {
		kids, err := p.children(name, s.Name)
		if err != nil {
			return err
		}
		if len(kids) > 0 {
			return virtplane.Errorf(virtplane.ErrConflict, "pool %q: volume %q is the parent of linked clones %v", p.cfg.Name, name, kids)
		}
	}
	parent, perr := img.GetParent()
	for _, s := range snaps {
		snap := img.GetSnapshot(s.Name)
		if prot, err := snap.IsProtected(); err == nil && prot {
			if err := snap.Unprotect(); err != nil {
				return p.cephErr("unprotect snapshot of", name, err)
			}
		}
		if err := snap.Remove(); err != nil {
			return p.cephErr("remove snapshot of", name, err)
		}
	}
	closeImg()
	if err := rbd.RemoveImage(p.ioctx, name); err != nil {
		return p.cephErr("remove", name, err)
	}
	if perr == nil && parent.Image.PoolName == p.cfg.Pool && strings.HasPrefix(parent.Snap.SnapName, cloneSnapPrefix) {
		// Best effort: the clone is gone either way; a leftover snapshot
		// is removed when the parent is deleted.
		p.dropCloneSnap(parent.Image.ImageName, parent.Snap.SnapName)
	}
	return nil
}

// children lists the images cloned from snapshot snap of name.
func (p *Pool) children(name, snap string) ([]string, error) {
	img, err := rbd.OpenImageReadOnly(p.ioctx, name, snap)
	if err != nil {
		return nil, p.cephErr("open", name+"@"+snap, err)
	}
	defer img.Close()
	_, kids, err := img.ListChildren()
	if err != nil {
		return nil, p.cephErr("list children of", name+"@"+snap, err)
	}
	return kids, nil
}

// dropCloneSnap unprotects and removes a clone snapshot that has no children left.
func (p *Pool) dropCloneSnap(image, snap string) {
	if kids, err := p.children(image, snap); err != nil || len(kids) > 0 {
		return
	}
	img, err := rbd.OpenImage(p.ioctx, image, rbd.NoSnapshot)
	if err != nil {
		return
	}
	defer img.Close()
	s := img.GetSnapshot(snap)
	_ = s.Unprotect()
	_ = s.Remove()
}

// Resize implements storage.Resizer.
func (p *Pool) Resize(ctx context.Context, name string, size int64, opts storage.ResizeOptions) (storage.Volume, error) {
	if err := storage.ValidateName("volume name", name); err != nil {
		return storage.Volume{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	img, err := rbd.OpenImage(p.ioctx, name, rbd.NoSnapshot)
	if err != nil {
		return storage.Volume{}, p.cephErr("open", name, err)
	}
	defer img.Close()
	cur, err := img.GetSize()
	if err != nil {
		return storage.Volume{}, p.cephErr("stat", name, err)
	}
	if size <= 0 {
		return storage.Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "volume %q: size %d must be positive", name, size)
	}
	if uint64(size) < cur && !opts.AllowShrink {
		return storage.Volume{}, storage.ShrinkRefused(name, int64(cur), size)
	}
	if err := img.Resize(uint64(size)); err != nil {
		return storage.Volume{}, p.cephErr("resize", name, err)
	}
	img.Close()
	return p.stat(ctx, name)
}

// Clone implements storage.Cloner.
func (p *Pool) Clone(ctx context.Context, src, dst string, mode storage.CloneMode) (storage.Volume, error) {
	if err := storage.ValidateName("volume name", src); err != nil {
		return storage.Volume{}, err
	}
	if err := storage.ValidateName("clone name", dst); err != nil {
		return storage.Volume{}, err
	}
	if mode != storage.CloneLinked && mode != storage.CloneFull {
		return storage.Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "clone mode %d", mode)
	}
	if err := ctx.Err(); err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	img, err := rbd.OpenImage(p.ioctx, src, rbd.NoSnapshot)
	if err != nil {
		return storage.Volume{}, p.cephErr("open", src, err)
	}
	defer img.Close()
	if probe, err := rbd.OpenImageReadOnly(p.ioctx, dst, rbd.NoSnapshot); err == nil {
		probe.Close()
		return storage.Volume{}, storage.AlreadyExists(p.cfg.Name, dst)
	}

	r := revert.New()
	defer r.Fail()
	if mode == storage.CloneFull {
		if err := img.Copy(p.ioctx, dst); err != nil {
			return storage.Volume{}, p.cephErr("copy to", dst, err)
		}
		r.Add(func() { _ = rbd.RemoveImage(p.ioctx, dst) })
	} else {
		snapName := cloneSnapPrefix + dst
		snap, err := img.CreateSnapshot(snapName)
		if err != nil {
			return storage.Volume{}, p.cephErr("snapshot", src, err)
		}
		r.Add(func() { _ = snap.Remove() })
		if err := p.step("protect"); err != nil {
			return storage.Volume{}, err
		}
		if err := snap.Protect(); err != nil {
			return storage.Volume{}, p.cephErr("protect snapshot of", src, err)
		}
		r.Add(func() { _ = snap.Unprotect() })
		if err := p.step("clone"); err != nil {
			return storage.Volume{}, err
		}
		opts := rbd.NewRbdImageOptions()
		defer opts.Destroy()
		if err := opts.SetUint64(rbd.ImageOptionFeatures, features); err != nil {
			return storage.Volume{}, err
		}
		if err := rbd.CloneImage(p.ioctx, src, snapName, p.ioctx, dst, opts); err != nil {
			return storage.Volume{}, p.cephErr("clone to", dst, err)
		}
		r.Add(func() { _ = rbd.RemoveImage(p.ioctx, dst) })
	}
	if err := p.step("stat"); err != nil {
		return storage.Volume{}, err
	}
	v, err := p.stat(ctx, dst)
	if err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	return v, nil
}

// CreateSnapshot implements storage.Snapshotter.
func (p *Pool) CreateSnapshot(ctx context.Context, vol, snap string) (storage.Snapshot, error) {
	if err := storage.ValidateName("volume name", vol); err != nil {
		return storage.Snapshot{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Snapshot{}, err
	}
	img, err := rbd.OpenImage(p.ioctx, vol, rbd.NoSnapshot)
	if err != nil {
		return storage.Snapshot{}, p.cephErr("open", vol, err)
	}
	defer img.Close()
	if err := storage.ValidateName("snapshot name", snap); err != nil {
		return storage.Snapshot{}, err
	}
	if _, err := img.CreateSnapshot(snap); err != nil {
		if errors.Is(err, rbd.ErrExist) {
			return storage.Snapshot{}, virtplane.Errorf(virtplane.ErrAlreadyExists, "pool %q: volume %q: snapshot %q", p.cfg.Name, vol, snap)
		}
		return storage.Snapshot{}, p.cephErr("snapshot", vol, err)
	}
	list, err := p.snapshots(img, vol)
	if err != nil {
		return storage.Snapshot{}, err
	}
	for _, s := range list {
		if s.Name == snap {
			return s, nil
		}
	}
	return storage.Snapshot{}, storage.SnapshotNotFound(p.cfg.Name, vol, snap)
}

func (p *Pool) snapshots(img *rbd.Image, vol string) ([]storage.Snapshot, error) {
	infos, err := img.GetSnapshotNames()
	if err != nil {
		return nil, p.cephErr("list snapshots of", vol, err)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Id < infos[j].Id }) // ids grow: oldest first
	out := []storage.Snapshot{}
	for _, s := range infos {
		if strings.HasPrefix(s.Name, ".") {
			continue
		}
		sn := storage.Snapshot{Name: s.Name, Volume: vol}
		if ts, err := img.GetSnapTimestamp(s.Id); err == nil {
			sn.Created = time.Unix(int64(ts.Sec), int64(ts.Nsec))
		}
		out = append(out, sn)
	}
	return out, nil
}

// ListSnapshots implements storage.Snapshotter.
func (p *Pool) ListSnapshots(ctx context.Context, vol string) ([]storage.Snapshot, error) {
	if err := storage.ValidateName("volume name", vol); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	img, err := rbd.OpenImageReadOnly(p.ioctx, vol, rbd.NoSnapshot)
	if err != nil {
		return nil, p.cephErr("open", vol, err)
	}
	defer img.Close()
	return p.snapshots(img, vol)
}

// userSnapshot opens vol and checks that snap is one of its user snapshots.
func (p *Pool) userSnapshot(ctx context.Context, vol, snap string) (*rbd.Image, error) {
	if err := storage.ValidateName("volume name", vol); err != nil {
		return nil, err
	}
	if err := storage.ValidateName("snapshot name", snap); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	img, err := rbd.OpenImage(p.ioctx, vol, rbd.NoSnapshot)
	if err != nil {
		return nil, p.cephErr("open", vol, err)
	}
	list, err := p.snapshots(img, vol)
	if err != nil {
		img.Close()
		return nil, err
	}
	for _, s := range list {
		if s.Name == snap {
			return img, nil
		}
	}
	img.Close()
	return nil, storage.SnapshotNotFound(p.cfg.Name, vol, snap)
}

// RevertSnapshot implements storage.Snapshotter.
func (p *Pool) RevertSnapshot(ctx context.Context, vol, snap string) error {
	img, err := p.userSnapshot(ctx, vol, snap)
	if err != nil {
		return err
	}
	defer img.Close()
	if err := img.GetSnapshot(snap).Rollback(); err != nil {
		return p.cephErr("rollback", vol+"@"+snap, err)
	}
	return nil
}

// DeleteSnapshot implements storage.Snapshotter.
func (p *Pool) DeleteSnapshot(ctx context.Context, vol, snap string) error {
	img, err := p.userSnapshot(ctx, vol, snap)
	if err != nil {
		return err
	}
	defer img.Close()
	if err := img.GetSnapshot(snap).Remove(); err != nil {
		return p.cephErr("remove snapshot", vol+"@"+snap, err)
	}
	return nil
}

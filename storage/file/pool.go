package file

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/storage"
)

// Config is what a file pool needs.
type Config struct {
	Name string            // pool name
	Dir  string            // absolute directory holding the volumes; must exist
	Tags map[string]string // pool labels
	// Exec runs qemu-img; nil means storage.LocalExecutor{}.
	Exec storage.Executor
}

// Pool is a directory of qcow2 and raw image files, one per volume, named
// <volume>.qcow2 or <volume>.raw: the format is in the name, never probed
// from the content (a guest could write a qcow2 header into a raw disk).
type Pool struct {
	name string
	dir  string
	tags map[string]string
	ex   storage.Executor

	// mu serialises the checks and renames of changes; the qemu-img runs of
	// clones and resizes happen outside it, with their volumes pinned
	// (inUse), so that creates of different VMs run in parallel while a
	// delete still cannot race a clone about to depend on its volume.
	mu    sync.Mutex
	inUse map[string]int
}

// pin marks name in use by an operation that runs without mu (Delete
// refuses it meanwhile); call with mu held. The returned func unpins it.
func (p *Pool) pin(name string) func() {
	p.inUse[name]++
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.inUse[name]--; p.inUse[name] <= 0 {
			delete(p.inUse, name)
		}
	}
}

var (
	_ storage.Pool        = (*Pool)(nil)
	_ storage.Resizer     = (*Pool)(nil)
	_ storage.Cloner      = (*Pool)(nil)
	_ storage.Snapshotter = (*Pool)(nil)
)

var formats = []storage.Format{storage.FormatQcow2, storage.FormatRaw}

// New returns the pool in cfg.Dir.
func New(cfg Config) (*Pool, error) {
	if err := storage.ValidateName("pool name", cfg.Name); err != nil {
		return nil, err
	}
	if err := storage.ValidatePath("pool dir", cfg.Dir); err != nil {
		return nil, err
	}
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "pool dir %q: %v", cfg.Dir, err)
	}
	if !st.IsDir() {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "pool dir %q is not a directory", cfg.Dir)
	}
	ex := cfg.Exec
	if ex == nil {
		ex = storage.LocalExecutor{}
	}
	return &Pool{name: cfg.Name, dir: cfg.Dir, tags: maps.Clone(cfg.Tags), ex: ex, inUse: map[string]int{}}, nil
}

func (p *Pool) path(name string, f storage.Format) string {
	return filepath.Join(p.dir, name+"."+string(f))
}

// find returns the path and format of an existing volume.
func (p *Pool) find(name string) (string, storage.Format, error) {
	if err := storage.ValidateName("volume name", name); err != nil {
		return "", "", err
	}
	for _, f := range formats {
		path := p.path(name, f)
		if _, err := os.Lstat(path); err == nil {
			return path, f, nil
		}
	}
	return "", "", storage.NotFound(p.name, name)
}

// Info implements storage.Pool.
func (p *Pool) Info(ctx context.Context) (storage.PoolInfo, error) {
	info := storage.PoolInfo{Name: p.name, Driver: "file", Tags: maps.Clone(p.tags), Formats: formats}
	var st syscall.Statfs_t
	if err := syscall.Statfs(p.dir, &st); err != nil {
		return info, fmt.Errorf("pool %q: statfs: %w: %v", p.name, virtplane.ErrUnavailable, err)
	}
	info.Capacity = int64(st.Blocks) * st.Bsize
	vols, err := p.List(ctx)
	if err != nil {
		return info, err
	}
	for _, v := range vols {
		info.Used += v.Allocated
		info.Allocated += v.Capacity
	}
	return info, nil
}

// stat builds the Volume of an existing file without running qemu-img.
func (p *Pool) stat(name, path string, f storage.Format) (storage.Volume, error) {
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return storage.Volume{}, storage.NotFound(p.name, name)
	}
	if err != nil {
		return storage.Volume{}, fmt.Errorf("volume %q: %w: %v", name, virtplane.ErrUnavailable, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return storage.Volume{}, err
	}
	v := storage.Volume{Name: name, Pool: p.name, Format: f, Capacity: st.Size(),
		Attachment: storage.Attachment{Kind: storage.KindFile, Path: path, Format: string(f)}}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		v.Allocated = sys.Blocks * 512
	}
	if f == storage.FormatQcow2 {
		h, err := parseQcow2Header(fh)
		if err != nil {
			return storage.Volume{}, fmt.Errorf("volume %q: %w", name, err)
		}
		v.Capacity = h.Size
		if h.BackingFile != "" {
			v.Parent = p.parentName(h.BackingFile)
		}
	}
	return v, nil
}

// parentName maps a backing file to the volume it is, or returns the
// backing path itself when it lies outside the pool.
func (p *Pool) parentName(backing string) string {
	if !filepath.IsAbs(backing) {
		backing = filepath.Join(p.dir, backing)
	}
	if filepath.Dir(backing) != p.dir {
		return backing
	}
	base := filepath.Base(backing)
	for _, f := range formats {
		if n, ok := strings.CutSuffix(base, "."+string(f)); ok {
			return n
		}
	}
	return backing
}

// Volume implements storage.Pool.
func (p *Pool) Volume(ctx context.Context, name string) (storage.Volume, error) {
	path, f, err := p.find(name)
	if err != nil {
		return storage.Volume{}, err
	}
	return p.stat(name, path, f)
}

// List implements storage.Pool.
func (p *Pool) List(ctx context.Context) ([]storage.Volume, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("pool %q: %w: %v", p.name, virtplane.ErrUnavailable, err)
	}
	var out []storage.Volume
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		for _, f := range formats {
			name, ok := strings.CutSuffix(e.Name(), "."+string(f))
			if !ok || storage.ValidateName("volume name", name) != nil {
				continue
			}
			v, err := p.stat(name, filepath.Join(p.dir, e.Name()), f)
			if errors.Is(err, virtplane.ErrNotFound) {
				continue // deleted while listing
			}
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// checkFree reports ErrAlreadyExists when a volume of that name exists.
func (p *Pool) checkFree(name string) error {
	if _, _, err := p.find(name); err == nil {
		return storage.AlreadyExists(p.name, name)
	} else if !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	return nil
}

// tempPath names the file a new volume is written to before publish gives
// it its name: a half-written volume never appears under its final name,
// and qemu-img writes a new file (cheaper than overwriting a placeholder).
// The leading dot keeps it out of List.
func (p *Pool) tempPath(name string, f storage.Format) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(p.dir, "."+name+"-"+hex.EncodeToString(b[:])+"."+string(f))
}

// publish gives the finished file at tmp its volume name. link(2) fails when
// the name is taken, so two creates of one name (even from two nodes on a
// shared directory) cannot both succeed.
func (p *Pool) publish(tmp, name string, f storage.Format) (string, error) {
	if err := p.checkFree(name); err != nil {
		return "", err
	}
	path := p.path(name, f)
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return "", storage.AlreadyExists(p.name, name)
	} else if err != nil {
		return "", fmt.Errorf("volume %q: %w: %v", name, virtplane.ErrUnavailable, err)
	}
	_ = os.Remove(tmp)
	return path, nil
}

// Create implements storage.Pool.
func (p *Pool) Create(ctx context.Context, spec storage.VolumeSpec) (storage.Volume, error) {
	spec, err := storage.ValidateSpec(spec, formats)
	if err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkFree(spec.Name); err != nil {
		return storage.Volume{}, err
	}
	r := revert.New()
	defer r.Fail()
	tmp := p.tempPath(spec.Name, spec.Format)
	r.Add(func() { _ = os.Remove(tmp) })
	args := []string{"create", "-q", "-f", string(spec.Format)}
	if spec.Format == storage.FormatQcow2 {
		args = append(args, "-o", "preallocation=off")
	}
	args = append(args, tmp, strconv.FormatInt(spec.Size, 10))
	if _, err := p.ex.Run(ctx, storage.Command{Name: "qemu-img", Args: args}); err != nil {
		return storage.Volume{}, fmt.Errorf("create volume %q: %w", spec.Name, err)
	}
	path, err := p.publish(tmp, spec.Name, spec.Format)
	if err != nil {
		return storage.Volume{}, err
	}
	v, err := p.stat(spec.Name, path, spec.Format)
	if err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	return v, nil
}

// children returns the volumes whose parent is name. p.mu must be held.
func (p *Pool) children(ctx context.Context, name string) ([]string, error) {
	vols, err := p.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vols {
		if v.Parent == name {
			out = append(out, v.Name)
		}
	}
	return out, nil
}

// Delete implements storage.Pool.
func (p *Pool) Delete(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	path, _, err := p.find(name)
	if err != nil {
		return err
	}
	if p.inUse[name] > 0 {
		return virtplane.Errorf(virtplane.ErrConflict, "pool %q: volume %q is in use by a clone or resize under way", p.name, name)
	}
	kids, err := p.children(ctx, name)
	if err != nil {
		return err
	}
	if len(kids) > 0 {
		return virtplane.Errorf(virtplane.ErrConflict, "pool %q: volume %q is the parent of linked clones %v", p.name, name, kids)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete volume %q: %w: %v", name, virtplane.ErrUnavailable, err)
	}
	return nil
}

// Resize implements storage.Resizer.
func (p *Pool) Resize(ctx context.Context, name string, size int64, opts storage.ResizeOptions) (storage.Volume, error) {
	p.mu.Lock()
	path, f, err := p.find(name)
	if err != nil {
		p.mu.Unlock()
		return storage.Volume{}, err
	}
	if p.inUse[name] > 0 {
		p.mu.Unlock()
		return storage.Volume{}, virtplane.Errorf(virtplane.ErrConflict, "pool %q: volume %q is in use by a clone or resize under way", p.name, name)
	}
	defer p.pin(name)()
	p.mu.Unlock()
	if size <= 0 {
		return storage.Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "volume %q: size %d must be positive", name, size)
	}
	v, err := p.stat(name, path, f)
	if err != nil {
		return storage.Volume{}, err
	}
	args := []string{"resize", "-q", "-f", string(f)}
	if size < v.Capacity {
		if !opts.AllowShrink {
			return storage.Volume{}, storage.ShrinkRefused(name, v.Capacity, size)
		}
		args = append(args, "--shrink")
	}
	args = append(args, path, strconv.FormatInt(size, 10))
	if _, err := p.ex.Run(ctx, storage.Command{Name: "qemu-img", Args: args}); err != nil {
		return storage.Volume{}, fmt.Errorf("resize volume %q: %w", name, err)
	}
	return p.stat(name, path, f)
}

// Clone implements storage.Cloner. A linked clone is a qcow2 overlay whose
// backing file is the source, recorded relative to the pool directory so the
// directory can move; a full clone is a qemu-img convert that flattens any
// backing chain.
func (p *Pool) Clone(ctx context.Context, src, dst string, mode storage.CloneMode) (storage.Volume, error) {
	if err := storage.ValidateName("clone name", dst); err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	spath, sf, err := p.find(src)
	if err != nil {
		p.mu.Unlock()
		return storage.Volume{}, err
	}
	df := sf
	if mode == storage.CloneLinked {
		df = storage.FormatQcow2
	}
	if err := p.checkFree(dst); err != nil {
		p.mu.Unlock()
		return storage.Volume{}, err
	}
	// qemu-img runs without the lock; the source stays pinned until the
	// clone, published, names it as parent. publish's link(2) keeps two
	// clones to one name apart.
	defer p.pin(src)()
	p.mu.Unlock()
	r := revert.New()
	defer r.Fail()
	tmp := p.tempPath(dst, df)
	r.Add(func() { _ = os.Remove(tmp) })
	var cmd storage.Command
	switch mode {
	case storage.CloneLinked:
		cmd = storage.Command{Name: "qemu-img", Args: []string{"create", "-q", "-f", "qcow2", "-b", filepath.Base(spath), "-F", string(sf), tmp}}
	case storage.CloneFull:
		cmd = storage.Command{Name: "qemu-img", Args: []string{"convert", "-f", string(sf), "-O", string(df), spath, tmp}}
	default:
		return storage.Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "clone mode %d", mode)
	}
	if _, err := p.ex.Run(ctx, cmd); err != nil {
		return storage.Volume{}, fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	dpath, err := p.publish(tmp, dst, df)
	if err != nil {
		return storage.Volume{}, err
	}
	v, err := p.stat(dst, dpath, df)
	if err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	return v, nil
}

// qcow2Volume finds a volume that can hold internal snapshots.
func (p *Pool) qcow2Volume(name string) (string, error) {
	path, f, err := p.find(name)
	if err != nil {
		return "", err
	}
	if f != storage.FormatQcow2 {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "volume %q is %s; snapshots need qcow2", name, f)
	}
	return path, nil
}

// CreateSnapshot implements storage.Snapshotter with qcow2 internal snapshots.
func (p *Pool) CreateSnapshot(ctx context.Context, vol, snap string) (storage.Snapshot, error) {
	if err := storage.ValidateName("snapshot name", snap); err != nil {
		return storage.Snapshot{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	path, err := p.qcow2Volume(vol)
	if err != nil {
		return storage.Snapshot{}, err
	}
	list, err := p.snapshots(ctx, vol, path)
	if err != nil {
		return storage.Snapshot{}, err
	}
	for _, s := range list {
		if s.Name == snap {
			return storage.Snapshot{}, virtplane.Errorf(virtplane.ErrAlreadyExists, "pool %q: volume %q: snapshot %q", p.name, vol, snap)
		}
	}
	if _, err := p.ex.Run(ctx, storage.Command{Name: "qemu-img", Args: []string{"snapshot", "-q", "-c", snap, path}}); err != nil {
		return storage.Snapshot{}, fmt.Errorf("snapshot %q of %q: %w", snap, vol, err)
	}
	return storage.Snapshot{Name: snap, Volume: vol, Created: time.Now()}, nil
}

func (p *Pool) snapshots(ctx context.Context, vol, path string) ([]storage.Snapshot, error) {
	info, err := storage.QemuImageInfo(ctx, p.ex, path)
	if err != nil {
		return nil, err
	}
	out := []storage.Snapshot{}
	for _, s := range info.Snapshots {
		out = append(out, storage.Snapshot{Name: s.Name, Volume: vol, Created: time.Unix(s.DateSec, s.DateNsec)})
	}
	return out, nil
}

// ListSnapshots implements storage.Snapshotter.
func (p *Pool) ListSnapshots(ctx context.Context, vol string) ([]storage.Snapshot, error) {
	path, err := p.qcow2Volume(vol)
	if err != nil {
		return nil, err
	}
	return p.snapshots(ctx, vol, path)
}

func (p *Pool) snapshotOp(ctx context.Context, vol, snap, flag string) error {
	if err := storage.ValidateName("snapshot name", snap); err != nil {
		return err
	}
	path, err := p.qcow2Volume(vol)
	if err != nil {
		return err
	}
	list, err := p.snapshots(ctx, vol, path)
	if err != nil {
		return err
	}
	found := false
	for _, s := range list {
		found = found || s.Name == snap
	}
	if !found {
		return storage.SnapshotNotFound(p.name, vol, snap)
	}
	if flag == "-a" {
		// Reverting a parent would change the data under its linked clones.
		kids, err := p.children(ctx, vol)
		if err != nil {
			return err
		}
		if len(kids) > 0 {
			return virtplane.Errorf(virtplane.ErrConflict, "pool %q: volume %q has linked clones %v", p.name, vol, kids)
		}
	}
	if _, err := p.ex.Run(ctx, storage.Command{Name: "qemu-img", Args: []string{"snapshot", "-q", flag, snap, path}}); err != nil {
		return fmt.Errorf("snapshot %q of %q: %w", snap, vol, err)
	}
	return nil
}

// RevertSnapshot implements storage.Snapshotter.
func (p *Pool) RevertSnapshot(ctx context.Context, vol, snap string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshotOp(ctx, vol, snap, "-a")
}

// DeleteSnapshot implements storage.Snapshotter.
func (p *Pool) DeleteSnapshot(ctx context.Context, vol, snap string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshotOp(ctx, vol, snap, "-d")
}

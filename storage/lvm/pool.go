package lvm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// Tag marks the LVs a pool owns; LVs without it in the same VG are left alone.
const Tag = "virtplane"

// snapTagPrefix + volume name tags the LVs that are snapshots of that volume.
const snapTagPrefix = "virtplane_snap_of="

// Config is what an LVM pool needs.
type Config struct {
	Name string            // pool name
	VG   string            // volume group
	Tags map[string]string // pool labels
	// Exec runs the lvm2 commands; nil means storage.LocalExecutor{}.
	Exec storage.Executor
	// Env is added to every lvm2 command (LVM_SYSTEM_DIR=...).
	Env []string
	// ThinPool names the thin pool LV for NewThin.
	ThinPool string
	// NoActivation is for hosts without device-mapper: LVs are created
	// inactive and without zeroing or wiping, which need a device node.
	NoActivation bool
	// ExclusiveActivation activates with -aey, for a VG shared by several
	// nodes (LVM on a SAN LUN with lvmlockd), so one LV runs on one node.
	ExclusiveActivation bool
}

// Pool is a thick-provisioned LVM pool: one LV per volume, raw block devices.
type Pool struct {
	cfg Config
	ex  storage.Executor
	mu  sync.Mutex
}

// ThinPool is an LVM thin pool: volumes are thin LVs, linked clones and
// snapshots are thin snapshots (O(1), copy-on-write).
type ThinPool struct {
	*Pool
}

var (
	_ storage.Pool        = (*Pool)(nil)
	_ storage.Resizer     = (*Pool)(nil)
	_ storage.Activator   = (*Pool)(nil)
	_ storage.Cloner      = (*ThinPool)(nil)
	_ storage.Snapshotter = (*ThinPool)(nil)
)

// New returns a thick pool on the volume group cfg.VG.
func New(cfg Config) (*Pool, error) {
	if err := storage.ValidateName("pool name", cfg.Name); err != nil {
		return nil, err
	}
	if err := validateLVName("volume group", cfg.VG); err != nil {
		return nil, err
	}
	if cfg.ThinPool != "" {
		if err := validateLVName("thin pool", cfg.ThinPool); err != nil {
			return nil, err
		}
	}
	ex := cfg.Exec
	if ex == nil {
		ex = storage.LocalExecutor{}
	}
	cfg.Tags = maps.Clone(cfg.Tags)
	return &Pool{cfg: cfg, ex: ex}, nil
}

// NewThin returns a pool of thin LVs in the thin pool cfg.ThinPool.
func NewThin(cfg Config) (*ThinPool, error) {
	if cfg.ThinPool == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "thin pool name is empty")
	}
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &ThinPool{p}, nil
}

// validateLVName adds lvm2's own rules to storage.ValidateName: names it
// reserves for internal LVs are refused.
func validateLVName(field, name string) error {
	if err := storage.ValidateName(field, name); err != nil {
		return err
	}
	if name == "snapshot" || name == "pvmove" || strings.HasPrefix(name, "snapshot") || strings.HasPrefix(name, "pvmove") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: lvm2 reserves the prefixes snapshot and pvmove", field, name)
	}
	for _, s := range []string{"_cdata", "_cmeta", "_corig", "_mlog", "_mimage", "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vorigin", "_vdata"} {
		if strings.Contains(name, s) {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: lvm2 reserves %q", field, name, s)
		}
	}
	return nil
}

func (p *Pool) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := p.ex.Run(ctx, storage.Command{Name: name, Args: args, Env: p.cfg.Env})
	if err != nil {
		var ee *storage.ExitError
		if errors.As(err, &ee) {
			switch {
			case strings.Contains(ee.Stderr, "already exists"):
				return out, fmt.Errorf("%w: %w", virtplane.ErrAlreadyExists, err)
			case strings.Contains(ee.Stderr, "Insufficient free space"), strings.Contains(ee.Stderr, "insufficient free space"):
				return out, fmt.Errorf("%w: %w", virtplane.ErrResourceExhausted, err)
			case strings.Contains(ee.Stderr, "Failed to find"), strings.Contains(ee.Stderr, "not found"):
				return out, fmt.Errorf("%w: %w", virtplane.ErrNotFound, err)
			}
		}
		return out, err
	}
	return out, nil
}

func (p *Pool) lvPath(name string) string { return p.cfg.VG + "/" + name }

// listLVs returns the LVs of the VG this pool owns.
func (p *Pool) listLVs(ctx context.Context) ([]lv, error) {
	out, err := p.run(ctx, "lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", lvsFields, p.cfg.VG)
	if err != nil {
		return nil, err
	}
	all, err := parseLVs(out)
	if err != nil {
		return nil, err
	}
	var mine []lv
	for _, l := range all {
		if slices.Contains(l.Tags, Tag) {
			mine = append(mine, l)
		}
	}
	return mine, nil
}

func isSnapshot(l lv) (of string, ok bool) {
	for _, t := range l.Tags {
		if v, ok := strings.CutPrefix(t, snapTagPrefix); ok {
			return v, true
		}
	}
	return "", false
}

// volumeOf turns an LV into a Volume. all is the VG's owned LVs: an origin
// that is a snapshot LV (after a revert) is not reported as a parent volume.
func (p *Pool) volumeOf(l lv, all []lv) storage.Volume {
	v := storage.Volume{Name: l.Name, Pool: p.cfg.Name, Format: storage.FormatRaw, Capacity: l.Size, Allocated: l.Size,
		Attachment: storage.Attachment{Kind: storage.KindBlock, Path: "/dev/" + p.cfg.VG + "/" + l.Name, Format: string(storage.FormatRaw)}}
	if l.Pool != "" {
		v.Allocated = 0 // thin: lvs' data_percent would give it; not needed for placement
	}
	for _, o := range all {
		if _, snap := isSnapshot(o); o.Name == l.Origin && !snap {
			v.Parent = l.Origin
		}
	}
	return v
}

// find returns the owned, non-snapshot LV called name.
func (p *Pool) find(ctx context.Context, name string) (lv, []lv, error) {
	if err := validateLVName("volume name", name); err != nil {
		return lv{}, nil, err
	}
	all, err := p.listLVs(ctx)
	if err != nil {
		return lv{}, nil, err
	}
	for _, l := range all {
		if _, snap := isSnapshot(l); l.Name == name && !snap {
			return l, all, nil
		}
	}
	return lv{}, all, storage.NotFound(p.cfg.Name, name)
}

// Info implements storage.Pool.
func (p *Pool) Info(ctx context.Context) (storage.PoolInfo, error) {
	driver := "lvm"
	if p.cfg.ThinPool != "" {
		driver = "lvm-thin"
	}
	info := storage.PoolInfo{Name: p.cfg.Name, Driver: driver, Tags: maps.Clone(p.cfg.Tags), Formats: []storage.Format{storage.FormatRaw}}
	out, err := p.run(ctx, "vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "vg_size,vg_free", p.cfg.VG)
	if err != nil {
		return info, err
	}
	vgs, err := parseVGs(out)
	if err != nil {
		return info, err
	}
	if len(vgs) != 1 {
		return info, fmt.Errorf("vgs %s: %d rows: %w", p.cfg.VG, len(vgs), virtplane.ErrUnavailable)
	}
	info.Capacity, info.Used = vgs[0].Size, vgs[0].Size-vgs[0].Free
	lvs, err := p.listLVs(ctx)
	if err != nil {
		return info, err
	}
	for _, l := range lvs {
		info.Allocated += l.Size
	}
	return info, nil
}

// Volume implements storage.Pool.
func (p *Pool) Volume(ctx context.Context, name string) (storage.Volume, error) {
	l, all, err := p.find(ctx, name)
	if err != nil {
		return storage.Volume{}, err
	}
	return p.volumeOf(l, all), nil
}

// List implements storage.Pool.
func (p *Pool) List(ctx context.Context) ([]storage.Volume, error) {
	lvs, err := p.listLVs(ctx)
	if err != nil {
		return nil, err
	}
	out := []storage.Volume{}
	for _, l := range lvs {
		if _, snap := isSnapshot(l); !snap {
			out = append(out, p.volumeOf(l, lvs))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func bytesArg(n int64) string { return strconv.FormatInt(n, 10) + "b" }

// activationArgs are the lvcreate flags for a new LV.
func (p *Pool) activationArgs() []string {
	if p.cfg.NoActivation {
		// -Zn/-Wn: zeroing and signature wiping write to the device node.
		return []string{"-an", "-Zn", "-Wn"}
	}
	return []string{"-an", "-Wy"}
}

// Create implements storage.Pool.
func (p *Pool) Create(ctx context.Context, spec storage.VolumeSpec) (storage.Volume, error) {
	spec, err := storage.ValidateSpec(spec, []storage.Format{storage.FormatRaw})
	if err != nil {
		return storage.Volume{}, err
	}
	if err := validateLVName("volume name", spec.Name); err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, _, err := p.find(ctx, spec.Name); err == nil {
		return storage.Volume{}, storage.AlreadyExists(p.cfg.Name, spec.Name)
	} else if !errors.Is(err, virtplane.ErrNotFound) {
		return storage.Volume{}, err
	}
	args := []string{"-y"}
	if p.cfg.ThinPool != "" {
		args = append(args, "-V", bytesArg(spec.Size), "-T", p.lvPath(p.cfg.ThinPool))
	} else {
		args = append(args, "-L", bytesArg(spec.Size))
	}
	args = append(args, p.activationArgs()...)
	args = append(args, "--addtag", Tag, "-n", spec.Name)
	if p.cfg.ThinPool == "" {
		args = append(args, p.cfg.VG)
	}
	if _, err := p.run(ctx, "lvcreate", args...); err != nil {
		if errors.Is(err, virtplane.ErrAlreadyExists) {
			return storage.Volume{}, storage.AlreadyExists(p.cfg.Name, spec.Name)
		}
		return storage.Volume{}, fmt.Errorf("create volume %q: %w", spec.Name, err)
	}
	l, all, err := p.find(ctx, spec.Name)
	if err != nil {
		return storage.Volume{}, err
	}
	return p.volumeOf(l, all), nil
}

// Delete implements storage.Pool. The volume's snapshots go with it; a
// volume with linked clones is refused.
func (p *Pool) Delete(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, all, err := p.find(ctx, name)
	if err != nil {
		return err
	}
	targets := []string{p.lvPath(name)}
	for _, l := range all {
		of, snap := isSnapshot(l)
		switch {
		case snap && of == name:
			targets = append(targets, p.lvPath(l.Name))
		case !snap && l.Origin == name:
			return virtplane.Errorf(virtplane.ErrConflict, "pool %q: volume %q is the parent of linked clone %q", p.cfg.Name, name, l.Name)
		}
	}
	// Snapshots first: one lvremove call removes them all or none is left
	// half-done by an interruption between two calls.
	slices.Reverse(targets)
	if _, err := p.run(ctx, "lvremove", append([]string{"-y"}, targets...)...); err != nil {
		return fmt.Errorf("delete volume %q: %w", name, err)
	}
	return nil
}

// Resize implements storage.Resizer. lvm2 rounds the size up to whole extents.
func (p *Pool) Resize(ctx context.Context, name string, size int64, opts storage.ResizeOptions) (storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, _, err := p.find(ctx, name)
	if err != nil {
		return storage.Volume{}, err
	}
	if size <= 0 {
		return storage.Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "volume %q: size %d must be positive", name, size)
	}
	args := []string{"-y"}
	if size < l.Size {
		if !opts.AllowShrink {
			return storage.Volume{}, storage.ShrinkRefused(name, l.Size, size)
		}
		args = append(args, "-f") // lvreduce asks for confirmation of data loss
	}
	args = append(args, "-L", bytesArg(size), p.lvPath(name))
	if _, err := p.run(ctx, "lvresize", args...); err != nil {
		return storage.Volume{}, fmt.Errorf("resize volume %q: %w", name, err)
	}
	l, all, err := p.find(ctx, name)
	if err != nil {
		return storage.Volume{}, err
	}
	return p.volumeOf(l, all), nil
}

// Activate implements storage.Activator: the LV's device node appears on
// this node. Thin snapshots carry the activation-skip flag, hence -K.
func (p *Pool) Activate(ctx context.Context, name string) error {
	if _, _, err := p.find(ctx, name); err != nil {
		return err
	}
	mode := "-ay"
	if p.cfg.ExclusiveActivation {
		mode = "-aey"
	}
	if _, err := p.run(ctx, "lvchange", mode, "-K", p.lvPath(name)); err != nil {
		return fmt.Errorf("activate volume %q: %w", name, err)
	}
	return nil
}

// Deactivate implements storage.Activator.
func (p *Pool) Deactivate(ctx context.Context, name string) error {
	if _, _, err := p.find(ctx, name); err != nil {
		return err
	}
	if _, err := p.run(ctx, "lvchange", "-an", p.lvPath(name)); err != nil {
		return fmt.Errorf("deactivate volume %q: %w", name, err)
	}
	return nil
}

package san

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"sort"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// ISCSIConfig is what a LUN pool needs.
type ISCSIConfig struct {
	Name        string            // pool name
	Portal      string            // host:port of the target portal
	Target      string            // target IQN
	Provisioner LUNProvisioner    // the array's management API
	Tags        map[string]string // pool labels
}

// ISCSIPool hands each volume to QEMU as a whole iSCSI LUN, reached by QEMU's
// own initiator (libiscsi): no kernel initiator, no multipath on the node.
type ISCSIPool struct {
	cfg ISCSIConfig
}

var _ storage.Pool = (*ISCSIPool)(nil)

// NewISCSI returns a pool whose volumes are the LUNs cfg.Provisioner makes.
func NewISCSI(cfg ISCSIConfig) (*ISCSIPool, error) {
	if err := storage.ValidateName("pool name", cfg.Name); err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(cfg.Portal); err != nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "portal %q: %v", cfg.Portal, err)
	}
	if err := storage.ValidateISCSIURL("iscsi://" + cfg.Portal + "/" + cfg.Target + "/0"); err != nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "target %q", cfg.Target)
	}
	if cfg.Provisioner == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "pool %q has no LUN provisioner", cfg.Name)
	}
	cfg.Tags = maps.Clone(cfg.Tags)
	return &ISCSIPool{cfg: cfg}, nil
}

func (p *ISCSIPool) volumeOf(l LUN) storage.Volume {
	return storage.Volume{Name: l.Name, Pool: p.cfg.Name, Format: storage.FormatRaw, Capacity: l.Size, Allocated: l.Size,
		Attachment: storage.Attachment{Kind: storage.KindISCSI, Format: string(storage.FormatRaw),
			URL: fmt.Sprintf("iscsi://%s/%s/%d", p.cfg.Portal, p.cfg.Target, l.Number)}}
}

// Info implements storage.Pool.
func (p *ISCSIPool) Info(ctx context.Context) (storage.PoolInfo, error) {
	info := storage.PoolInfo{Name: p.cfg.Name, Driver: "san-iscsi", Tags: maps.Clone(p.cfg.Tags), Formats: []storage.Format{storage.FormatRaw}}
	luns, err := p.cfg.Provisioner.ListLUNs(ctx)
	if err != nil {
		return info, err
	}
	for _, l := range luns {
		info.Allocated += l.Size
		info.Used += l.Size
	}
	return info, nil
}

// Create implements storage.Pool.
func (p *ISCSIPool) Create(ctx context.Context, spec storage.VolumeSpec) (storage.Volume, error) {
	spec, err := storage.ValidateSpec(spec, []storage.Format{storage.FormatRaw})
	if err != nil {
		return storage.Volume{}, err
	}
	if _, err := p.Volume(ctx, spec.Name); err == nil {
		return storage.Volume{}, storage.AlreadyExists(p.cfg.Name, spec.Name)
	} else if !errors.Is(err, virtplane.ErrNotFound) {
		return storage.Volume{}, err
	}
	l, err := p.cfg.Provisioner.CreateLUN(ctx, spec.Name, spec.Size)
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return storage.Volume{}, storage.AlreadyExists(p.cfg.Name, spec.Name)
	}
	if err != nil {
		return storage.Volume{}, err
	}
	return p.volumeOf(l), nil
}

// Volume implements storage.Pool.
func (p *ISCSIPool) Volume(ctx context.Context, name string) (storage.Volume, error) {
	if err := storage.ValidateName("volume name", name); err != nil {
		return storage.Volume{}, err
	}
	luns, err := p.cfg.Provisioner.ListLUNs(ctx)
	if err != nil {
		return storage.Volume{}, err
	}
	for _, l := range luns {
		if l.Name == name {
			return p.volumeOf(l), nil
		}
	}
	return storage.Volume{}, storage.NotFound(p.cfg.Name, name)
}

// List implements storage.Pool.
func (p *ISCSIPool) List(ctx context.Context) ([]storage.Volume, error) {
	luns, err := p.cfg.Provisioner.ListLUNs(ctx)
	if err != nil {
		return nil, err
	}
	out := []storage.Volume{}
	for _, l := range luns {
		out = append(out, p.volumeOf(l))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete implements storage.Pool.
func (p *ISCSIPool) Delete(ctx context.Context, name string) error {
	if _, err := p.Volume(ctx, name); err != nil {
		return err
	}
	if err := p.cfg.Provisioner.DeleteLUN(ctx, name); err != nil {
		if errors.Is(err, virtplane.ErrNotFound) {
			return storage.NotFound(p.cfg.Name, name)
		}
		return err
	}
	return nil
}

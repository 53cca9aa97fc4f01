package lvm

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/storage"
)

// maxLVName is lvm2's limit on LV names.
const maxLVName = 127

// snapLVName is the LV that holds snapshot snap of volume vol.
func snapLVName(vol, snap string) (string, error) {
	n := vol + "." + snap
	if len(n) > maxLVName {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "snapshot %q of %q: the LV name %q is longer than %d characters", snap, vol, n, maxLVName)
	}
	return n, nil
}

// Clone implements storage.Cloner. A linked clone is a thin snapshot of the
// source (its origin); a full clone is a new thin LV filled with qemu-img
// convert between the two activated device nodes.
func (t *ThinPool) Clone(ctx context.Context, src, dst string, mode storage.CloneMode) (storage.Volume, error) {
	if err := validateLVName("clone name", dst); err != nil {
		return storage.Volume{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	sl, all, err := t.find(ctx, src)
	if err != nil {
		return storage.Volume{}, err
	}
	for _, l := range all {
		if l.Name == dst {
			return storage.Volume{}, storage.AlreadyExists(t.cfg.Name, dst)
		}
	}
	r := revert.New()
	defer r.Fail()
	undoCtx := context.WithoutCancel(ctx)
	switch mode {
	case storage.CloneLinked:
		if _, err := t.run(ctx, "lvcreate", "-y", "-s", "-kn", "-an", "--addtag", Tag, "-n", dst, t.lvPath(src)); err != nil {
			return storage.Volume{}, fmt.Errorf("clone %q to %q: %w", src, dst, err)
		}
	case storage.CloneFull:
		args := append([]string{"-y", "-V", bytesArg(sl.Size), "-T", t.lvPath(t.cfg.ThinPool)}, t.activationArgs()...)
		if _, err := t.run(ctx, "lvcreate", append(args, "--addtag", Tag, "-n", dst)...); err != nil {
			return storage.Volume{}, fmt.Errorf("clone %q to %q: %w", src, dst, err)
		}
		r.Add(func() { _, _ = t.run(undoCtx, "lvremove", "-y", t.lvPath(dst)) })
		for _, n := range []string{src, dst} {
			if _, err := t.run(ctx, "lvchange", "-ay", "-K", t.lvPath(n)); err != nil {
				return storage.Volume{}, fmt.Errorf("clone %q to %q: activate %q: %w", src, dst, n, err)
			}
			defer func() { _, _ = t.run(undoCtx, "lvchange", "-an", t.lvPath(n)) }()
		}
		cmd, err := storage.ConvertCommand(t.volumeOf(sl, nil).Attachment, t.volumeOf(lv{Name: dst}, nil).Attachment)
		if err != nil {
			return storage.Volume{}, err
		}
		if _, err := t.ex.Run(ctx, cmd); err != nil {
			return storage.Volume{}, fmt.Errorf("clone %q to %q: %w", src, dst, err)
		}
	default:
		return storage.Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "clone mode %d", mode)
	}
	l, all, err := t.find(ctx, dst)
	if err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	return t.volumeOf(l, all), nil
}

// CreateSnapshot implements storage.Snapshotter: a thin snapshot LV named
// <volume>.<snapshot>, tagged with the volume it belongs to.
func (t *ThinPool) CreateSnapshot(ctx context.Context, vol, snap string) (storage.Snapshot, error) {
	if err := storage.ValidateName("snapshot name", snap); err != nil {
		return storage.Snapshot{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, all, err := t.find(ctx, vol)
	if err != nil {
		return storage.Snapshot{}, err
	}
	name, err := snapLVName(vol, snap)
	if err != nil {
		return storage.Snapshot{}, err
	}
	for _, l := range all {
		if l.Name == name {
			return storage.Snapshot{}, virtplane.Errorf(virtplane.ErrAlreadyExists, "pool %q: volume %q: snapshot %q", t.cfg.Name, vol, snap)
		}
	}
	if _, err := t.run(ctx, "lvcreate", "-y", "-s", "-an", "--addtag", Tag, "--addtag", snapTagPrefix+vol, "-n", name, t.lvPath(vol)); err != nil {
		return storage.Snapshot{}, fmt.Errorf("snapshot %q of %q: %w", snap, vol, err)
	}
	snaps, err := t.ListSnapshots(ctx, vol)
	if err != nil {
		return storage.Snapshot{}, err
	}
	for _, s := range snaps {
		if s.Name == snap {
			return s, nil
		}
	}
	return storage.Snapshot{}, storage.SnapshotNotFound(t.cfg.Name, vol, snap)
}

func (t *ThinPool) snapshots(vol string, all []lv) []storage.Snapshot {
	var rows []lv
	for _, l := range all {
		if of, ok := isSnapshot(l); ok && of == vol {
			rows = append(rows, l)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Time.Before(rows[j].Time) })
	out := []storage.Snapshot{}
	for _, l := range rows {
		out = append(out, storage.Snapshot{Name: strings.TrimPrefix(l.Name, vol+"."), Volume: vol, Created: l.Time})
	}
	return out
}

// ListSnapshots implements storage.Snapshotter.
func (t *ThinPool) ListSnapshots(ctx context.Context, vol string) ([]storage.Snapshot, error) {
	_, all, err := t.find(ctx, vol)
	if err != nil {
		return nil, err
	}
	return t.snapshots(vol, all), nil
}

func (t *ThinPool) findSnapshot(ctx context.Context, vol, snap string) (string, []lv, error) {
	if err := storage.ValidateName("snapshot name", snap); err != nil {
		return "", nil, err
	}
	_, all, err := t.find(ctx, vol)
	if err != nil {
		return "", nil, err
	}
	for _, s := range t.snapshots(vol, all) {
		if s.Name == snap {
			name, err := snapLVName(vol, snap)
			return name, all, err
		}
	}
	return "", nil, storage.SnapshotNotFound(t.cfg.Name, vol, snap)
}

// RevertSnapshot implements storage.Snapshotter. Thin LVs cannot be rolled
// back in place while keeping the snapshot, so the volume is replaced by a
// new thin snapshot of the snapshot: rename the volume aside, snapshot the
// snapshot under the volume's name, remove the old volume. A failure puts
// the old volume back.
func (t *ThinPool) RevertSnapshot(ctx context.Context, vol, snap string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	snapLV, all, err := t.findSnapshot(ctx, vol, snap)
	if err != nil {
		return err
	}
	for _, l := range all {
		if _, s := isSnapshot(l); !s && l.Origin == vol {
			return virtplane.Errorf(virtplane.ErrConflict, "pool %q: volume %q has linked clone %q", t.cfg.Name, vol, l.Name)
		}
	}
	aside := vol + "-reverting"
	if len(aside) > maxLVName {
		aside = aside[len(aside)-maxLVName:]
	}
	r := revert.New()
	defer r.Fail()
	undoCtx := context.WithoutCancel(ctx)
	if _, err := t.run(ctx, "lvrename", t.cfg.VG, vol, aside); err != nil {
		return fmt.Errorf("revert %q to %q: %w", vol, snap, err)
	}
	r.Add(func() { _, _ = t.run(undoCtx, "lvrename", t.cfg.VG, aside, vol) })
	if _, err := t.run(ctx, "lvcreate", "-y", "-s", "-kn", "-an", "--addtag", Tag, "-n", vol, t.lvPath(snapLV)); err != nil {
		return fmt.Errorf("revert %q to %q: %w", vol, snap, err)
	}
	r.Add(func() { _, _ = t.run(undoCtx, "lvremove", "-y", t.lvPath(vol)) })
	if _, err := t.run(ctx, "lvremove", "-y", t.lvPath(aside)); err != nil {
		return fmt.Errorf("revert %q to %q: %w", vol, snap, err)
	}
	r.Success()
	return nil
}

// DeleteSnapshot implements storage.Snapshotter.
func (t *ThinPool) DeleteSnapshot(ctx context.Context, vol, snap string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	snapLV, _, err := t.findSnapshot(ctx, vol, snap)
	if err != nil {
		return err
	}
	if _, err := t.run(ctx, "lvremove", "-y", t.lvPath(snapLV)); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
		return fmt.Errorf("delete snapshot %q of %q: %w", snap, vol, err)
	}
	return nil
}

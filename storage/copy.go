package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
)

// CopyVolume copies the volume srcName of src into a new volume dstName of
// dst with qemu-img convert, streaming between any two attachment kinds
// (file, block, RBD, iSCSI). It is the data path of storage migration. The
// destination keeps the source's format when dst accepts it, else takes dst's
// default. On any failure the new volume is deleted again.
func CopyVolume(ctx context.Context, ex Executor, src Pool, srcName string, dst Pool, dstName string) (Volume, error) {
	return CopyVolumeSized(ctx, ex, src, srcName, dst, dstName, 0)
}

// CopyVolumeSized is CopyVolume into a new volume of size bytes (0: the
// source's size): a full copy of an image that becomes a larger disk. A
// size smaller than the source's is ErrInvalidArgument.
func CopyVolumeSized(ctx context.Context, ex Executor, src Pool, srcName string, dst Pool, dstName string, size int64) (Volume, error) {
	if err := ValidateName("destination volume name", dstName); err != nil {
		return Volume{}, err
	}
	sv, err := src.Volume(ctx, srcName)
	if err != nil {
		return Volume{}, err
	}
	if size == 0 {
		size = sv.Capacity
	}
	if size < sv.Capacity {
		return Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "copy of %q: size %d is smaller than the source's %d", srcName, size, sv.Capacity)
	}
	dinfo, err := dst.Info(ctx)
	if err != nil {
		return Volume{}, err
	}
	format := sv.Format
	if !slices.Contains(dinfo.Formats, format) && len(dinfo.Formats) > 0 {
		format = dinfo.Formats[0]
	}

	r := revert.New()
	defer r.Fail()
	undoCtx := context.WithoutCancel(ctx)

	if a, ok := As[Activator](src); ok {
		if err := a.Activate(ctx, srcName); err != nil {
			return Volume{}, err
		}
		defer func() { _ = a.Deactivate(undoCtx, srcName) }()
	}
	dv, err := dst.Create(ctx, VolumeSpec{Name: dstName, Size: size, Format: format})
	if err != nil {
		return Volume{}, err
	}
	r.Add(func() { _ = dst.Delete(undoCtx, dstName) })
	if a, ok := As[Activator](dst); ok {
		if err := a.Activate(ctx, dstName); err != nil {
			return Volume{}, err
		}
		r.Add(func() { _ = a.Deactivate(undoCtx, dstName) })
	}
	cmd, err := ConvertCommand(sv.Attachment, dv.Attachment)
	if err != nil {
		return Volume{}, err
	}
	if _, err := ex.Run(ctx, cmd); err != nil {
		return Volume{}, fmt.Errorf("copy %q to %q: %w", srcName, dstName, err)
	}
	if a, ok := As[Activator](dst); ok {
		if err := a.Deactivate(ctx, dstName); err != nil {
			return Volume{}, err
		}
	}
	dv, err = dst.Volume(ctx, dstName)
	if err != nil {
		return Volume{}, err
	}
	r.Success()
	return dv, nil
}

// MoveVolume copies a volume like CopyVolume and then deletes the source.
// When the source cannot be deleted the copy is removed again, so a failed
// move leaves the source as it was and nothing at the destination.
func MoveVolume(ctx context.Context, ex Executor, src Pool, srcName string, dst Pool, dstName string) (Volume, error) {
	dv, err := CopyVolume(ctx, ex, src, srcName, dst, dstName)
	if err != nil {
		return Volume{}, err
	}
	if err := src.Delete(ctx, srcName); err != nil {
		if derr := dst.Delete(context.WithoutCancel(ctx), dstName); derr != nil {
			err = errors.Join(err, fmt.Errorf("removing the copy %q: %w", dstName, derr))
		}
		return Volume{}, err
	}
	return dv, nil
}

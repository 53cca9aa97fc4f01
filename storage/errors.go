package storage

import (
	"github.com/virtplane/virtplane"
)

// The helpers below build the errors every driver returns, so that messages
// look the same whichever backend produced them.

// NotFound reports a missing volume of a pool.
func NotFound(pool, volume string) error {
	return virtplane.Errorf(virtplane.ErrNotFound, "pool %q: volume %q", pool, volume)
}

// AlreadyExists reports a taken volume name.
func AlreadyExists(pool, volume string) error {
	return virtplane.Errorf(virtplane.ErrAlreadyExists, "pool %q: volume %q", pool, volume)
}

// SnapshotNotFound reports a missing snapshot.
func SnapshotNotFound(pool, volume, snap string) error {
	return virtplane.Errorf(virtplane.ErrNotFound, "pool %q: volume %q: snapshot %q", pool, volume, snap)
}

// ShrinkRefused reports a smaller size without ResizeOptions.AllowShrink.
func ShrinkRefused(volume string, from, to int64) error {
	return virtplane.Errorf(virtplane.ErrInvalidArgument,
		"volume %q: size %d is smaller than %d; shrinking needs AllowShrink", volume, to, from)
}

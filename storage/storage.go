package storage

import (
	"context"
	"time"
)

// Format is the on-disk format of a volume's data.
type Format string

// The formats a volume can have.
const (
	FormatQcow2 Format = "qcow2"
	FormatRaw   Format = "raw"
)

// Attachment kinds: how vmm hands a volume to QEMU.
const (
	KindFile  = "file"
	KindBlock = "block"
	KindRBD   = "rbd"
	KindISCSI = "iscsi"
)

// Attachment tells vmm how to attach a volume to a VM. It mirrors
// vmm.DiskSource field for field; the daemon converts one into the other so
// that neither package imports the other.
type Attachment struct {
	Kind     string   // "file", "block", "rbd" or "iscsi"
	Path     string   // file or block device path (file, block)
	Format   string   // "qcow2" or "raw"
	Pool     string   // RBD pool (rbd)
	Image    string   // RBD image name (rbd)
	Monitors []string // "host:port" monitor addresses (rbd)
	User     string   // cephx user without "client." (rbd); empty = no auth
	Secret   string   // libvirt secret UUID for cephx (rbd), optional
	URL      string   // iscsi://host:port/iqn/lun (iscsi)
}

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	Name   string // unique in the pool; see ValidateName
	Size   int64  // virtual size in bytes, > 0
	Format Format // one of the pool's PoolInfo.Formats; empty = the pool's first
}

// Volume is what a pool reports about one volume.
type Volume struct {
	Name       string
	Pool       string
	Format     Format
	Capacity   int64  // virtual size in bytes
	Allocated  int64  // bytes the backend has allocated to it (may be 0 when unknown)
	Parent     string // the volume a linked clone reads through, empty for none
	Attachment Attachment
}

// PoolInfo describes a pool: its identity, tags and space.
type PoolInfo struct {
	Name    string
	Driver  string            // "file", "lvm", "ceph", "san-iscsi", "san-lvm", "fake"
	Tags    map[string]string // operator labels ("tier=ssd"), used for placement
	Formats []Format          // formats Create accepts, the default first

	Capacity  int64 // bytes the pool can hold, 0 when unknown
	Used      int64 // bytes allocated on the backend
	Allocated int64 // sum of the volumes' virtual sizes (the overcommit numerator)
}

// Pool is a set of volumes on one backend. Optional features are separate
// interfaces (Resizer, Cloner, Snapshotter, Activator) detected with As, a
// type assertion the way io/fs does it.
//
// Errors wrap a virtplane class: ErrNotFound for a missing volume,
// ErrAlreadyExists for a taken name, ErrInvalidArgument (naming the value)
// for bad input, ErrConflict when the volume's state forbids the operation.
type Pool interface {
	// Info returns the pool's identity, tags and space.
	Info(ctx context.Context) (PoolInfo, error)
	// Create makes an empty volume.
	Create(ctx context.Context, spec VolumeSpec) (Volume, error)
	// Volume returns the current state (stat) of one volume.
	Volume(ctx context.Context, name string) (Volume, error)
	// List returns every volume of the pool, sorted by name.
	List(ctx context.Context) ([]Volume, error)
	// Delete removes a volume. A volume other volumes depend on (the parent
	// of a linked clone) is refused with ErrConflict.
	Delete(ctx context.Context, name string) error
}

// ResizeOptions modify Resize.
type ResizeOptions struct {
	// AllowShrink permits a smaller size. Shrinking destroys the data past
	// the new end, so without it a smaller size is ErrInvalidArgument.
	AllowShrink bool
}

// Resizer changes a volume's virtual size.
type Resizer interface {
	Resize(ctx context.Context, name string, size int64, opts ResizeOptions) (Volume, error)
}

// CloneMode selects how Clone copies.
type CloneMode int

const (
	// CloneLinked makes a copy-on-write child that shares the source's data:
	// O(1) in the image size. The source becomes its Parent.
	CloneLinked CloneMode = iota
	// CloneFull copies every byte; the clone is independent of the source.
	CloneFull
)

func (m CloneMode) String() string {
	switch m {
	case CloneLinked:
		return "linked"
	case CloneFull:
		return "full"
	}
	return "unknown"
}

// Cloner makes a new volume from an existing one in the same pool.
type Cloner interface {
	Clone(ctx context.Context, src, dst string, mode CloneMode) (Volume, error)
}

// Snapshot is a point-in-time state of a volume.
type Snapshot struct {
	Name    string
	Volume  string
	Created time.Time // zero when the backend does not record it
}

// Snapshotter keeps point-in-time states of a volume.
type Snapshotter interface {
	CreateSnapshot(ctx context.Context, volume, snapshot string) (Snapshot, error)
	// ListSnapshots returns the volume's snapshots, oldest first.
	ListSnapshots(ctx context.Context, volume string) ([]Snapshot, error)
	// RevertSnapshot returns the volume's data to the snapshot's state.
	RevertSnapshot(ctx context.Context, volume, snapshot string) error
	DeleteSnapshot(ctx context.Context, volume, snapshot string) error
}

// Activator is implemented by pools whose volumes must be made available on
// a node before use (LVM on a shared LUN: only one node may have an LV active).
type Activator interface {
	Activate(ctx context.Context, name string) error
	Deactivate(ctx context.Context, name string) error
}

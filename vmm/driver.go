package vmm

import (
	"context"
	"time"
)

// Driver manages the life cycle of the machines of one node. Names are the
// identity of a machine on its node. Every method is safe for concurrent use.
type Driver interface {
	// Create defines a machine from spec without starting it. A machine with
	// the same name gives ErrAlreadyExists; an invalid spec ErrInvalidArgument.
	Create(ctx context.Context, spec Spec) (VM, error)
	// Start boots a stopped machine. Starting a running machine gives ErrConflict.
	Start(ctx context.Context, name string) error
	// Shutdown asks the guest to power off and waits up to timeout for it to
	// stop; when the guest does not stop in time it returns ErrTimeout and
	// leaves the machine running (the caller may then Stop it).
	Shutdown(ctx context.Context, name string, timeout time.Duration) error
	// Stop powers a machine off at once, like pulling the plug.
	Stop(ctx context.Context, name string) error
	// Reboot resets a running machine.
	Reboot(ctx context.Context, name string) error
	// Suspend pauses a running machine's CPUs; Resume continues them.
	Suspend(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
	// Delete removes a stopped machine with its snapshots and the files the
	// driver created for it (cloud-init seeds); disks handed over in the spec
	// belong to storage and stay. A running machine gives ErrConflict.
	Delete(ctx context.Context, name string) error
	// Get returns a machine's state and configured resources.
	Get(ctx context.Context, name string) (VM, error)
	// List returns all machines of the node, sorted by name.
	List(ctx context.Context) ([]VM, error)
}

// Snapshotter takes and restores point-in-time copies of a machine.
type Snapshotter interface {
	// CreateSnapshot records the disks (and, with spec.Memory, the memory
	// and device state of a running machine).
	CreateSnapshot(ctx context.Context, name string, spec SnapshotSpec) error
	// ListSnapshots returns the snapshots of a machine, oldest first.
	ListSnapshots(ctx context.Context, name string) ([]Snapshot, error)
	// RevertSnapshot returns the machine to the snapshot: disks, and the
	// run state it had (running only for snapshots with memory).
	RevertSnapshot(ctx context.Context, name, snapshot string) error
	DeleteSnapshot(ctx context.Context, name, snapshot string) error
}

// Resizer changes the CPU count and memory of a machine. A driver that
// cannot apply the change to a running machine records it for its next boot.
type Resizer interface {
	Resize(ctx context.Context, name string, r Resources) error
}

// DiskResizer grows a disk of a running machine while the guest runs and
// tells the guest: the hypervisor grows an image it holds open itself (a
// qcow2 or raw file, an RBD image) and takes up the new size of a block
// device that storage grew first. Disks only grow: a size below the current
// one is ErrInvalidArgument (shrinking would cut off data the guest
// wrote), an unknown target ErrNotFound, a machine that does not run
// ErrConflict (grow the volume in storage; the guest sees it at boot).
type DiskResizer interface {
	// ResizeDisk grows the disk at target ("vda") to size bytes, rounded up
	// to the hypervisor's granularity; the current size is not an error.
	ResizeDisk(ctx context.Context, name, target string, size int64) error
}

// DiskAttacher adds disks to a machine and takes them away, stopped or
// running: the definition changes, and a running machine's hardware too
// (hotplug). A disk's data belongs to storage: detaching never deletes it.
type DiskAttacher interface {
	// AttachDisk adds disk to the machine. A target the machine already
	// uses is ErrAlreadyExists; a disk the hypervisor cannot hotplug (a
	// CD-ROM on a running machine) ErrInvalidArgument.
	AttachDisk(ctx context.Context, name string, disk Disk) error
	// DetachDisk removes the disk at target; an unknown target is
	// ErrNotFound. A running guest must release the device first: one that
	// does not within the driver's deadline gives ErrTimeout, and the
	// machine keeps the disk (the definition is left as it was).
	DetachDisk(ctx context.Context, name, target string) error
}

// DiskCopier moves a disk of a running machine to another source while
// the guest runs: the hypervisor mirrors the disk into the new source,
// keeps the two in step, and switches the machine over once they are
// (libvirt's block copy). The old source is left as it was, for the
// caller to remove.
type DiskCopier interface {
	// CopyDisk mirrors the disk at target into dest, an existing volume at
	// least as large, and switches the machine to it; progress (which may
	// be nil) hears the bytes copied and to copy. On any error, the context's
	// end included, the copy is abandoned and the machine stays on its old
	// source. A machine that does not run is ErrConflict; an unknown target
	// ErrNotFound.
	CopyDisk(ctx context.Context, name, target string, dest DiskSource, progress func(done, total int64)) error
	// AbortDiskCopy abandons a copy of the disk at target that a caller
	// that is gone left running; no copy is not an error.
	AbortDiskCopy(ctx context.Context, name, target string) error
}

// Limiter sets the resource limits of a machine, live when it runs.
// Weights of 0 are left as they are; every disk and NIC listed in the maps
// gets exactly the limits given (a zero entry removes its throttles); disks
// and NICs not listed keep theirs.
type Limiter interface {
	SetLimits(ctx context.Context, name string, l Limits) error
}

// Rescuer boots a machine from a diagnostics image with its own disks
// attached, and back to its normal boot.
type Rescuer interface {
	EnterRescue(ctx context.Context, name string, r RescueSpec) error
	ExitRescue(ctx context.Context, name string) error
}

// Consoler exposes the graphical console of a machine.
type Consoler interface {
	Console(ctx context.Context, name string) (Console, error)
	// SetConsolePassword changes the password the console asks for.
	SetConsolePassword(ctx context.Context, name, password string) error
}

// Migrator moves a running machine to another node without stopping it.
type Migrator interface {
	// Migrate returns when the machine runs on the target, reporting
	// progress to progress (which may be nil) while memory is copied.
	Migrate(ctx context.Context, name string, target MigrationTarget, progress func(MigrationProgress)) error
}

// MigrationAborter stops the outgoing live migration of a machine that its
// caller can no longer cancel. A migration's job runs in the hypervisor: when
// the process that started it dies (a daemon killed while memory is copied),
// the job runs on and may complete later, moving the machine after the
// caller's recovery decided where it is. Recovery therefore aborts the job
// first, then looks.
type MigrationAborter interface {
	// AbortMigration aborts the outgoing migration job of a machine, if one
	// runs, and returns once no such job runs any more; no job is not an
	// error. The machine then runs on this node, or, when the job completed
	// before the abort took hold, on the target and no longer here: look with
	// Get. A machine the node does not have gives ErrNotFound.
	AbortMigration(ctx context.Context, name string) error
}

// IncomingPreparer readies a node to receive a machine by live migration
// when the node does not share the source's files: the per-machine files
// the hypervisor keeps beside the disks (the cloud-init seed, the console
// log's directory) are made from the machine's spec, where the domain
// names them (nodes keep them under the same state directory). Disks are
// not its business (MigrationTarget.Disks).
type IncomingPreparer interface {
	// PrepareIncoming makes the files of the machine spec describes. A
	// machine of that name already on the node is ErrAlreadyExists.
	PrepareIncoming(ctx context.Context, spec Spec) error
	// DiscardIncoming removes what PrepareIncoming made, unless the machine
	// arrived (it is defined here: ErrConflict); nothing made is not an
	// error.
	DiscardIncoming(ctx context.Context, name string) error
}

// GuestAgent talks to an agent inside the guest.
type GuestAgent interface {
	// GuestAddresses returns the addresses the guest reports per interface.
	GuestAddresses(ctx context.Context, name string) ([]GuestInterface, error)
	// GuestExec runs a command in the guest and returns its result.
	GuestExec(ctx context.Context, name string, argv []string) (ExecResult, error)
	// SetGuestPassword sets the password of a guest user.
	SetGuestPassword(ctx context.Context, name, user, password string) error
}

// EventWatcher streams state changes of the node's machines.
type EventWatcher interface {
	// Events delivers state changes until ctx ends, then closes the channel.
	// A slow reader loses events rather than blocking the driver; the State
	// in each event is the machine's state after the change.
	Events(ctx context.Context) (<-chan Event, error)
}

// ImageRooted is implemented by drivers that make a machine's root file
// system themselves from Spec.Image (containers): the caller names an
// image and hands over no root disk.
type ImageRooted interface {
	// RootFromImage marks the capability; it does nothing.
	RootFromImage()
}

// UsageReporter returns cumulative usage counters of a running machine.
type UsageReporter interface {
	Usage(ctx context.Context, name string) (Usage, error)
}

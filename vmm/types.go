package vmm

import "time"

// State is the run state of a machine.
type State string

// The states a machine can be in.
const (
	StateStopped State = "stopped"
	StateRunning State = "running"
	StatePaused  State = "paused"
	StateCrashed State = "crashed"
	StateUnknown State = "unknown"
)

// VM is a machine as the driver sees it now.
type VM struct {
	Name  string
	State State
	// Rescue is true while the machine boots from a rescue image.
	Rescue bool
	// Spec holds the configured resources as read back from the hypervisor:
	// name, CPUs, memory, disks, NICs and limits. Boot and CloudInit are not
	// read back.
	Spec Spec
}

// Resources are the CPU count and memory size of a machine.
type Resources struct {
	VCPUs     int
	MemoryMiB int64
}

// SnapshotSpec describes a snapshot to take.
type SnapshotSpec struct {
	Name string
	// Memory also records RAM and device state, so that a revert resumes
	// the machine where it was; only meaningful for a running machine.
	Memory      bool
	Description string
}

// Snapshot is a recorded snapshot.
type Snapshot struct {
	Name    string
	Memory  bool
	State   State // state of the machine when the snapshot was taken
	Created time.Time
}

// RescueSpec is the diagnostics image a machine boots from in rescue mode:
// a kernel and initrd, or an ISO image booted as a CD-ROM.
type RescueSpec struct {
	Kernel, Initrd, Cmdline string
	ISO                     string
}

// Console is the endpoint of a graphical console.
type Console struct {
	Type     string // "vnc" or "spice"
	Host     string
	Port     int
	Password string
}

// MigrationTarget names the node a machine moves to.
type MigrationTarget struct {
	// URI is the hypervisor connection of the target, as the driver takes
	// it (for libvirt "qemu+tcp://host/system").
	URI string
	// Address is the address the target listens on for migration data;
	// empty lets the hypervisor choose.
	Address string
	// Bandwidth limits the migration in MiB/s; 0 means unlimited.
	BandwidthMiBs uint64
	// AllowUnsafe lets the hypervisor migrate although it cannot prove that
	// the disks sit on storage both nodes share (local file systems that
	// are in fact shared, test setups).
	AllowUnsafe bool
	// Disks, when set, are the disks (by target) whose storage the nodes do
	// not share: the hypervisor copies them, while the machine runs, into
	// the given sources on the target, which exist and are at least as
	// large. A driver that cannot copy disks returns ErrNotImplemented and
	// changes nothing.
	Disks map[string]DiskSource
}

// MigrationProgress reports how far a migration is.
type MigrationProgress struct {
	DataTotal, DataProcessed, DataRemaining uint64
	Elapsed                                 time.Duration
}

// GuestInterface is a network interface inside the guest.
type GuestInterface struct {
	Name      string
	MAC       string
	Addresses []string // CIDR notation
}

// ExecResult is the outcome of a command run in the guest.
type ExecResult struct {
	ExitCode       int
	Stdout, Stderr []byte
}

// Event is a state change of a machine.
type Event struct {
	VM    string
	State State
	// Reason is the driver's word for the cause ("booted", "destroyed",
	// "shutdown", "paused", "migrated", ...).
	Reason string
	Time   time.Time
}

// Usage holds cumulative counters since the machine started.
type Usage struct {
	CPUTime     time.Duration
	MemoryBytes uint64 // memory in use (RSS or balloon-reported)
	Disks       []DiskUsage
	NICs        []NICUsage
}

// DiskUsage holds the counters of one disk.
type DiskUsage struct {
	Target                      string
	ReadBytes, WriteBytes       uint64
	ReadRequests, WriteRequests uint64
}

// NICUsage holds the counters of one NIC.
type NICUsage struct {
	MAC                  string
	RxBytes, TxBytes     uint64
	RxPackets, TxPackets uint64
}

package fake

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// CreateSnapshot records the machine's resources and, with Memory, its run state.
func (d *Driver) CreateSnapshot(ctx context.Context, name string, spec vmm.SnapshotSpec) error {
	if err := d.enter(ctx, "CreateSnapshot", name, spec); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := vmm.CheckName("snapshot name", spec.Name); err != nil {
		return err
	}
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if spec.Memory && m.state != vmm.StateRunning && m.state != vmm.StatePaused {
		return conflict(name, m.state, "take a memory snapshot")
	}
	for _, s := range m.snapshots {
		if s.info.Name == spec.Name {
			return virtplane.Errorf(virtplane.ErrAlreadyExists, "snapshot %q of vm %q", spec.Name, name)
		}
	}
	m.snapshots = append(m.snapshots, snapshot{
		info:  vmm.Snapshot{Name: spec.Name, Memory: spec.Memory, State: m.state, Created: d.now()},
		spec:  cloneSpec(m.spec),
		state: m.state,
	})
	return nil
}

// ListSnapshots returns the snapshots oldest first.
func (d *Driver) ListSnapshots(ctx context.Context, name string) ([]vmm.Snapshot, error) {
	if err := d.enter(ctx, "ListSnapshots", name, nil); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return nil, err
	}
	out := make([]vmm.Snapshot, 0, len(m.snapshots))
	for _, s := range m.snapshots {
		out = append(out, s.info)
	}
	return out, nil
}

func (m *machine) snapshot(vm, name string) (int, error) {
	for i, s := range m.snapshots {
		if s.info.Name == name {
			return i, nil
		}
	}
	return 0, virtplane.Errorf(virtplane.ErrNotFound, "snapshot %q of vm %q", name, vm)
}

// RevertSnapshot restores resources and, for memory snapshots, the run state.
func (d *Driver) RevertSnapshot(ctx context.Context, name, snap string) error {
	if err := d.enter(ctx, "RevertSnapshot", name, snap); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	i, err := m.snapshot(name, snap)
	if err != nil {
		return err
	}
	s := m.snapshots[i]
	m.spec = cloneSpec(s.spec)
	st := vmm.StateStopped
	if s.info.Memory {
		st = s.state
	}
	d.setState(name, m, st, "reverted")
	return nil
}

// DeleteSnapshot removes a snapshot.
func (d *Driver) DeleteSnapshot(ctx context.Context, name, snap string) error {
	if err := d.enter(ctx, "DeleteSnapshot", name, snap); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	i, err := m.snapshot(name, snap)
	if err != nil {
		return err
	}
	m.snapshots = slices.Delete(m.snapshots, i, i+1)
	return nil
}

// Resize changes the configured CPUs and memory.
func (d *Driver) Resize(ctx context.Context, name string, r vmm.Resources) error {
	if err := d.enter(ctx, "Resize", name, r); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	s := m.spec
	s.VCPUs, s.MemoryMiB = r.VCPUs, r.MemoryMiB
	if err := s.Validate(); err != nil {
		return err
	}
	m.spec = s
	return nil
}

// ResizeDisk records a new size of a running machine's disk. The fake does
// not know the size a disk starts with, so any first size is a growth.
func (d *Driver) ResizeDisk(ctx context.Context, name, target string, size int64) error {
	if err := d.enter(ctx, "ResizeDisk", name, size); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if size <= 0 {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %q of vm %q: size %d must be positive", target, name, size)
	}
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(m.spec.Disks, func(dk vmm.Disk) bool { return dk.Target == target }) {
		return virtplane.Errorf(virtplane.ErrNotFound, "disk %q of vm %q", target, name)
	}
	if m.state != vmm.StateRunning && m.state != vmm.StatePaused {
		return conflict(name, m.state, "resize a disk")
	}
	size = (size + 511) &^ 511
	if cur := m.diskSizes[target]; size < cur {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %q of vm %q: %d bytes is below the current %d: disks only grow", target, name, size, cur)
	}
	if m.diskSizes == nil {
		m.diskSizes = map[string]int64{}
	}
	m.diskSizes[target] = size
	return nil
}

// DiskSize returns the size ResizeDisk last gave a disk (0: never resized),
// for tests.
func (d *Driver) DiskSize(name, target string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.vms[name]; ok {
		return m.diskSizes[target]
	}
	return 0
}

// SetLimits replaces the machine's limits.
func (d *Driver) SetLimits(ctx context.Context, name string, l vmm.Limits) error {
	if err := d.enter(ctx, "SetLimits", name, l); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	s := cloneSpec(m.spec)
	if l.CPUWeight > 0 {
		s.Limits.CPUWeight = l.CPUWeight
	}
	if l.IOWeight > 0 {
		s.Limits.IOWeight = l.IOWeight
	}
	switch l.CPUCapPercent {
	case 0:
	case vmm.NoCap:
		s.Limits.CPUCapPercent = 0
	default:
		s.Limits.CPUCapPercent = l.CPUCapPercent
	}
	for t, dl := range l.Disks {
		if s.Limits.Disks == nil {
			s.Limits.Disks = map[string]vmm.DiskLimits{}
		}
		s.Limits.Disks[t] = dl
		if dl == (vmm.DiskLimits{}) {
			delete(s.Limits.Disks, t)
		}
	}
	for mac, nl := range l.NICs {
		mac = strings.ToLower(mac)
		if s.Limits.NICs == nil {
			s.Limits.NICs = map[string]vmm.NICLimits{}
		}
		s.Limits.NICs[mac] = nl
		if nl == (vmm.NICLimits{}) {
			delete(s.Limits.NICs, mac)
		}
	}
	for i := range s.NICs {
		s.NICs[i].Limits = s.Limits.NICs[s.NICs[i].MAC]
	}
	if len(s.Limits.Disks) == 0 {
		s.Limits.Disks = nil
	}
	if err := s.Validate(); err != nil {
		return err
	}
	if len(s.Limits.NICs) == 0 {
		s.Limits.NICs = nil
	}
	m.spec = s
	return nil
}

// EnterRescue reboots the machine from the rescue image.
func (d *Driver) EnterRescue(ctx context.Context, name string, r vmm.RescueSpec) error {
	if err := d.enter(ctx, "EnterRescue", name, r); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := vmm.CheckRescue(r); err != nil {
		return err
	}
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if m.rescue != nil {
		return conflict(name, "in rescue", "enter rescue")
	}
	m.rescue = &r
	d.setState(name, m, vmm.StateRunning, "rescue")
	return nil
}

// ExitRescue boots the machine normally again.
func (d *Driver) ExitRescue(ctx context.Context, name string) error {
	if err := d.enter(ctx, "ExitRescue", name, nil); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if m.rescue == nil {
		return conflict(name, "not in rescue", "exit rescue")
	}
	m.rescue = nil
	d.setState(name, m, vmm.StateRunning, "booted")
	return nil
}

// Console returns the console endpoint of a running machine.
func (d *Driver) Console(ctx context.Context, name string) (vmm.Console, error) {
	if err := d.enter(ctx, "Console", name, nil); err != nil {
		return vmm.Console{}, err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return vmm.Console{}, err
	}
	if m.spec.Console.Type == "" {
		return vmm.Console{}, virtplane.Errorf(virtplane.ErrNotFound, "vm %q has no console", name)
	}
	if m.state != vmm.StateRunning && m.state != vmm.StatePaused {
		return vmm.Console{}, conflict(name, m.state, "open a console")
	}
	port := 5900
	for _, n := range slices.Sorted(maps.Keys(d.vms)) {
		if n == name {
			break
		}
		port++
	}
	return vmm.Console{Type: m.spec.Console.Type, Host: "127.0.0.1", Port: port, Password: m.consolePass}, nil
}

// SetConsolePassword changes the console password.
func (d *Driver) SetConsolePassword(ctx context.Context, name, password string) error {
	if err := d.enter(ctx, "SetConsolePassword", name, nil); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := vmm.CheckPassword("password", password); err != nil {
		return err
	}
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if m.spec.Console.Type == "" {
		return virtplane.Errorf(virtplane.ErrNotFound, "vm %q has no console", name)
	}
	m.consolePass = password
	m.spec.Console.Password = password
	return nil
}

// Migrate moves a running machine to the peer registered for target.URI;
// the disks in target.Disks arrive with their new sources. The move is a
// job of the fake hypervisor: it completes at once, unless HoldMigrations
// was called; then Migrate waits until ReleaseMigrations completes the job or
// AbortMigration ends it. A held job outlives its caller: when ctx ends,
// Migrate returns ErrCanceled and the job runs on, the way a hypervisor's
// job runs on when the daemon that started it is killed.
func (d *Driver) Migrate(ctx context.Context, name string, target vmm.MigrationTarget, progress func(vmm.MigrationProgress)) error {
	if err := d.enter(ctx, "Migrate", name, target); err != nil {
		return err
	}
	if _, err := d.get(name); err != nil {
		d.mu.Unlock()
		return err
	}
	if _, ok := d.peers[target.URI]; !ok {
		d.mu.Unlock()
		return virtplane.Errorf(virtplane.ErrUnavailable, "migration target %q unknown", target.URI)
	}
	job, err := d.startJob(name, target)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	hold := d.holdMigrations
	total := uint64(job.spec.MemoryMiB) << 20
	d.mu.Unlock()
	if !hold {
		if progress != nil {
			for i := uint64(1); i <= 4; i++ {
				progress(vmm.MigrationProgress{DataTotal: total, DataProcessed: total * i / 4, DataRemaining: total - total*i/4, Elapsed: time.Duration(i) * time.Millisecond})
			}
		}
		return d.finishJob(name, job)
	}
	if progress != nil {
		progress(vmm.MigrationProgress{DataTotal: total, DataProcessed: total / 2, DataRemaining: total - total/2, Elapsed: time.Millisecond})
	}
	select {
	case err := <-job.end:
		return err
	case <-ctx.Done():
		return ctxErr(ctx)
	}
}

// migrationJob is a machine's outgoing migration while it runs.
type migrationJob struct {
	target vmm.MigrationTarget
	spec   vmm.Spec   // the machine as the target defines it
	end    chan error // gets the job's outcome: nil when it completed
}

// startJob records an outgoing migration job of a running machine (d.mu
// held); the peer is looked up when the job completes.
func (d *Driver) startJob(name string, target vmm.MigrationTarget) (*migrationJob, error) {
	m, err := d.get(name)
	if err != nil {
		return nil, err
	}
	if m.state != vmm.StateRunning {
		return nil, conflict(name, m.state, "migrate")
	}
	if _, ok := d.jobs[name]; ok {
		return nil, virtplane.Errorf(virtplane.ErrConflict, "vm %q: a migration job runs already", name)
	}
	spec := cloneSpec(m.spec)
	for t, src := range target.Disks {
		i := slices.IndexFunc(spec.Disks, func(dk vmm.Disk) bool { return dk.Target == t })
		if i < 0 {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "migration disks: vm %q has no disk %q", name, t)
		}
		if err := src.Validate("migration disks[" + t + "]"); err != nil {
			return nil, err
		}
		spec.Disks[i].Source = src // copied while the machine runs
	}
	job := &migrationJob{target: target, spec: spec, end: make(chan error, 1)}
	d.jobs[name] = job
	return job, nil
}

// finishJob completes a migration job: the machine moves to the peer. A
// job that ended meanwhile (aborted) is left alone. The outcome goes to the
// job's caller too.
func (d *Driver) finishJob(name string, job *migrationJob) error {
	d.mu.Lock()
	if d.jobs[name] != job {
		d.mu.Unlock()
		return virtplane.Errorf(virtplane.ErrCanceled, "migration of %q was aborted", name)
	}
	delete(d.jobs, name)
	m, ok := d.vms[name]
	if !ok { // deleted meanwhile: the job failed with it
		d.mu.Unlock()
		err := notFound(name)
		job.end <- err
		return err
	}
	peer, ok := d.peers[job.target.URI]
	pm := &machine{spec: job.spec, state: vmm.StateStopped, consolePass: m.consolePass, guestPass: maps.Clone(m.guestPass), diskSizes: maps.Clone(m.diskSizes)}
	d.mu.Unlock()
	err := virtplane.Errorf(virtplane.ErrUnavailable, "migration target %q unknown", job.target.URI)
	if ok {
		err = peer.arrive(name, pm, job.target.URI)
	}
	if err == nil {
		d.mu.Lock()
		d.setState(name, m, vmm.StateStopped, "migrated")
		delete(d.vms, name)
		d.mu.Unlock()
	}
	job.end <- err
	return err
}

// arrive takes in a migrated machine.
func (d *Driver) arrive(name string, m *machine, uri string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.vms[name]; ok {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "vm %q on %s", name, uri)
	}
	d.vms[name] = m
	delete(d.incoming, name) // its prepared files are the machine's now
	d.setState(name, m, vmm.StateRunning, "migrated")
	return nil
}

// AbortMigration ends the outgoing migration job of a machine, if one runs:
// the machine stays here, running, and the job's caller gets ErrCanceled.
func (d *Driver) AbortMigration(ctx context.Context, name string) error {
	if err := d.enter(ctx, "AbortMigration", name, nil); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if _, err := d.get(name); err != nil {
		return err
	}
	job, ok := d.jobs[name]
	if !ok {
		return nil
	}
	delete(d.jobs, name)
	job.end <- virtplane.Errorf(virtplane.ErrCanceled, "migration of %q aborted", name)
	return nil
}

func (d *Driver) runningGuest(name string) (*machine, error) {
	m, err := d.get(name)
	if err != nil {
		return nil, err
	}
	if m.state != vmm.StateRunning {
		return nil, conflict(name, m.state, "reach the guest agent")
	}
	return m, nil
}

// GuestAddresses reports one interface per NIC, named eth0, eth1, ...
func (d *Driver) GuestAddresses(ctx context.Context, name string) ([]vmm.GuestInterface, error) {
	if err := d.enter(ctx, "GuestAddresses", name, nil); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	m, err := d.runningGuest(name)
	if err != nil {
		return nil, err
	}
	out := []vmm.GuestInterface{{Name: "lo", Addresses: []string{"127.0.0.1/8"}}}
	for i, n := range m.spec.NICs {
		out = append(out, vmm.GuestInterface{Name: fmt.Sprintf("eth%d", i), MAC: n.MAC})
	}
	return out, nil
}

// GuestExec understands "echo ARGS..." and "true"; anything else exits 127.
func (d *Driver) GuestExec(ctx context.Context, name string, argv []string) (vmm.ExecResult, error) {
	if err := d.enter(ctx, "GuestExec", name, argv); err != nil {
		return vmm.ExecResult{}, err
	}
	defer d.mu.Unlock()
	if len(argv) == 0 {
		return vmm.ExecResult{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "argv: empty")
	}
	if _, err := d.runningGuest(name); err != nil {
		return vmm.ExecResult{}, err
	}
	switch argv[0] {
	case "echo":
		return vmm.ExecResult{Stdout: []byte(strings.Join(argv[1:], " ") + "\n")}, nil
	case "true":
		return vmm.ExecResult{}, nil
	}
	return vmm.ExecResult{ExitCode: 127, Stderr: []byte(argv[0] + ": not found\n")}, nil
}

// SetGuestPassword records the password of a guest user.
func (d *Driver) SetGuestPassword(ctx context.Context, name, user, password string) error {
	if err := d.enter(ctx, "SetGuestPassword", name, user); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := vmm.CheckName("user", user); err != nil {
		return err
	}
	if err := vmm.CheckPassword("password", password); err != nil {
		return err
	}
	m, err := d.runningGuest(name)
	if err != nil {
		return err
	}
	m.guestPass[user] = password
	return nil
}

// GuestPassword returns the password last set for user, for tests.
func (d *Driver) GuestPassword(name, user string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.vms[name]
	if !ok {
		return "", false
	}
	p, ok := m.guestPass[user]
	return p, ok
}

// Events streams state changes until ctx ends.
func (d *Driver) Events(ctx context.Context) (<-chan vmm.Event, error) {
	if err := d.enter(ctx, "Events", "", nil); err != nil {
		return nil, err
	}
	ch := make(chan vmm.Event, 64)
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	go func() {
		<-ctx.Done()
		d.mu.Lock()
		delete(d.subs, ch)
		close(ch)
		d.mu.Unlock()
	}()
	return ch, nil
}

// Usage reports counters: CPU time is the time spent running.
func (d *Driver) Usage(ctx context.Context, name string) (vmm.Usage, error) {
	if err := d.enter(ctx, "Usage", name, nil); err != nil {
		return vmm.Usage{}, err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return vmm.Usage{}, err
	}
	u := vmm.Usage{CPUTime: m.cpuUsed}
	if m.state == vmm.StateRunning {
		u.CPUTime += d.now().Sub(m.started)
		u.MemoryBytes = uint64(m.spec.MemoryMiB) << 20
	}
	for _, disk := range m.spec.Disks {
		u.Disks = append(u.Disks, vmm.DiskUsage{Target: disk.Target})
	}
	for _, n := range m.spec.NICs {
		u.NICs = append(u.NICs, vmm.NICUsage{MAC: n.MAC})
	}
	return u, nil
}

// PrepareIncoming implements vmm.IncomingPreparer: it records that the
// machine's files were made.
func (d *Driver) PrepareIncoming(ctx context.Context, spec vmm.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := d.enter(ctx, "PrepareIncoming", spec.Name, spec); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if _, ok := d.vms[spec.Name]; ok {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "vm %q", spec.Name)
	}
	d.incoming[spec.Name] = true
	return nil
}

// DiscardIncoming implements vmm.IncomingPreparer.
func (d *Driver) DiscardIncoming(ctx context.Context, name string) error {
	if err := d.enter(ctx, "DiscardIncoming", name, nil); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if _, ok := d.vms[name]; ok {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q arrived: its files stay", name)
	}
	delete(d.incoming, name)
	return nil
}

// Incoming says whether files for an incoming machine were prepared and
// not discarded (for tests).
func (d *Driver) Incoming(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.incoming[name]
}

// AttachDisk adds a disk to the machine's spec, running or not.
func (d *Driver) AttachDisk(ctx context.Context, name string, disk vmm.Disk) error {
	if err := d.enter(ctx, "AttachDisk", name, disk); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := disk.Validate("disk"); err != nil {
		return err
	}
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(m.spec.Disks, func(dk vmm.Disk) bool { return dk.Target == disk.Target }) {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "disk %q of vm %q", disk.Target, name)
	}
	if disk.CDROM && (m.state == vmm.StateRunning || m.state == vmm.StatePaused) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %q of vm %q: a cdrom drive cannot be hotplugged", disk.Target, name)
	}
	s := m.spec
	s.Disks = append(slices.Clip(s.Disks), disk)
	if err := s.Validate(); err != nil {
		return err
	}
	m.spec = s
	return nil
}

// DetachDisk removes a disk from the machine's spec, running or not; its
// limits go with it.
func (d *Driver) DetachDisk(ctx context.Context, name, target string) error {
	if err := d.enter(ctx, "DetachDisk", name, target); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(m.spec.Disks, func(dk vmm.Disk) bool { return dk.Target == target })
	if i < 0 {
		return virtplane.Errorf(virtplane.ErrNotFound, "disk %q of vm %q", target, name)
	}
	s := m.spec
	s.Disks = slices.Delete(slices.Clone(s.Disks), i, i+1)
	if _, ok := s.Limits.Disks[target]; ok {
		lim := maps.Clone(s.Limits.Disks)
		delete(lim, target)
		s.Limits.Disks = lim
	}
	delete(m.diskSizes, target)
	m.spec = s
	return nil
}

// CopyDisk switches a running machine's disk to dest at once (the fake
// has no data to mirror), reporting the copy done.
func (d *Driver) CopyDisk(ctx context.Context, name, target string, dest vmm.DiskSource, progress func(done, total int64)) error {
	if err := d.enter(ctx, "CopyDisk", name, dest); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := dest.Validate("dest"); err != nil {
		return err
	}
	m, err := d.get(name)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(m.spec.Disks, func(dk vmm.Disk) bool { return dk.Target == target })
	if i < 0 {
		return virtplane.Errorf(virtplane.ErrNotFound, "disk %q of vm %q", target, name)
	}
	if m.state != vmm.StateRunning && m.state != vmm.StatePaused {
		return conflict(name, m.state, "copy a disk")
	}
	s := m.spec
	s.Disks = slices.Clone(s.Disks)
	s.Disks[i].Source = dest
	m.spec = s
	if progress != nil {
		progress(1, 1)
	}
	return nil
}

// AbortDiskCopy has nothing to abandon: the fake's copies end at once.
func (d *Driver) AbortDiskCopy(ctx context.Context, name, target string) error {
	if err := d.enter(ctx, "AbortDiskCopy", name, target); err != nil {
		return err
	}
	defer d.mu.Unlock()
	_, err := d.get(name)
	return err
}

package fake

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// Call is one recorded driver call.
type Call struct {
	Method string
	VM     string
	Arg    any // the method's main argument beyond the name, if any
}

// Option configures a Driver.
type Option func(*Driver)

// WithGuestsIgnoringShutdown makes guests ignore graceful shutdown requests,
// like a guest without ACPI support: Shutdown then returns ErrTimeout.
func WithGuestsIgnoringShutdown() Option {
	return func(d *Driver) { d.ignoreShutdown = true }
}

// WithClock replaces time.Now (for event times and snapshot dates).
func WithClock(now func() time.Time) Option { return func(d *Driver) { d.now = now } }

// Driver is the fake. Create one with New.
type Driver struct {
	mu             sync.Mutex
	vms            map[string]*machine
	calls          []Call
	faults         map[string][]error
	latency        map[string]time.Duration
	subs           map[chan vmm.Event]struct{}
	peers          map[string]*Driver
	jobs           map[string]*migrationJob // outgoing migrations by machine
	holdMigrations bool
	incoming       map[string]bool // PrepareIncoming made their files
	ignoreShutdown bool
	now            func() time.Time
}

type machine struct {
	spec        vmm.Spec
	state       vmm.State
	rescue      *vmm.RescueSpec
	snapshots   []snapshot
	started     time.Time
	cpuUsed     time.Duration
	consolePass string
	guestPass   map[string]string
	diskSizes   map[string]int64 // by target, once ResizeDisk set them
}

type snapshot struct {
	info  vmm.Snapshot
	spec  vmm.Spec
	state vmm.State
}

var (
	_ vmm.Driver           = (*Driver)(nil)
	_ vmm.Snapshotter      = (*Driver)(nil)
	_ vmm.Resizer          = (*Driver)(nil)
	_ vmm.DiskResizer      = (*Driver)(nil)
	_ vmm.DiskAttacher     = (*Driver)(nil)
	_ vmm.DiskCopier       = (*Driver)(nil)
	_ vmm.Limiter          = (*Driver)(nil)
	_ vmm.Rescuer          = (*Driver)(nil)
	_ vmm.Consoler         = (*Driver)(nil)
	_ vmm.Migrator         = (*Driver)(nil)
	_ vmm.MigrationAborter = (*Driver)(nil)
	_ vmm.IncomingPreparer = (*Driver)(nil)
	_ vmm.GuestAgent       = (*Driver)(nil)
	_ vmm.EventWatcher     = (*Driver)(nil)
	_ vmm.UsageReporter    = (*Driver)(nil)
)

// New returns an empty fake node.
func New(opts ...Option) *Driver {
	d := &Driver{
		vms:      map[string]*machine{},
		faults:   map[string][]error{},
		latency:  map[string]time.Duration{},
		subs:     map[chan vmm.Event]struct{}{},
		peers:    map[string]*Driver{},
		jobs:     map[string]*migrationJob{},
		incoming: map[string]bool{},
		now:      time.Now,
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// FailNext makes the next call of method (e.g. "Start") return err.
// Several calls queue several failures.
func (d *Driver) FailNext(method string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.faults[method] = append(d.faults[method], err)
}

// SetLatency makes every call of method wait for lat (or until ctx ends).
func (d *Driver) SetLatency(method string, lat time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.latency[method] = lat
}

// AddPeer makes uri a migration target that moves machines to peer.
func (d *Driver) AddPeer(uri string, peer *Driver) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.peers[uri] = peer
}

// HoldMigrations makes every later Migrate start its job and wait until
// ReleaseMigrations completes it or AbortMigration ends it: a migration in
// progress, for tests of what happens meanwhile.
func (d *Driver) HoldMigrations() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holdMigrations = true
}

// ReleaseMigrations completes every migration job that runs, in name order,
// and returns the machines that moved, with their targets. A job whose
// target is unknown or already has the machine ends with the machine here.
func (d *Driver) ReleaseMigrations() map[string]vmm.MigrationTarget {
	d.mu.Lock()
	jobs := maps.Clone(d.jobs)
	d.mu.Unlock()
	moved := map[string]vmm.MigrationTarget{}
	for _, name := range slices.Sorted(maps.Keys(jobs)) {
		if d.finishJob(name, jobs[name]) == nil {
			moved[name] = jobs[name].target
		}
	}
	return moved
}

// AddMigrationJob gives a running machine an outgoing migration job to
// target with no caller waiting for it, as a restarted daemon finds its
// hypervisor still migrating: ReleaseMigrations completes it,
// AbortMigration ends it. The target need not be a peer yet.
func (d *Driver) AddMigrationJob(name string, target vmm.MigrationTarget) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.startJob(name, target)
	return err
}

// MigrationJob returns the target of a machine's outgoing migration job,
// and whether one runs.
func (d *Driver) MigrationJob(name string) (vmm.MigrationTarget, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	job, ok := d.jobs[name]
	if !ok {
		return vmm.MigrationTarget{}, false
	}
	return job.target, true
}

// Calls returns the calls recorded so far, oldest first.
func (d *Driver) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// Crash marks a running machine crashed, as if its guest had panicked.
func (d *Driver) Crash(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.vms[name]; ok && m.state == vmm.StateRunning {
		d.setState(name, m, vmm.StateCrashed, "crashed")
	}
}

// enter records a call, waits the configured latency and pops an injected
// fault. It returns with d.mu held when err is nil.
func (d *Driver) enter(ctx context.Context, method, vm string, arg any) error {
	d.mu.Lock()
	d.calls = append(d.calls, Call{Method: method, VM: vm, Arg: arg})
	lat := d.latency[method]
	var fault error
	if q := d.faults[method]; len(q) > 0 {
		fault, d.faults[method] = q[0], q[1:]
	}
	d.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctxErr(ctx)
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	if fault != nil {
		return fault
	}
	d.mu.Lock()
	return nil
}

func ctxErr(ctx context.Context) error {
	if ctx.Err() == context.DeadlineExceeded {
		return virtplane.Errorf(virtplane.ErrTimeout, "fake: %v", ctx.Err())
	}
	return virtplane.Errorf(virtplane.ErrCanceled, "fake: %v", ctx.Err())
}

func notFound(name string) error {
	return virtplane.Errorf(virtplane.ErrNotFound, "vm %q", name)
}

func conflict(name string, st vmm.State, op string) error {
	return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot %s", name, st, op)
}

// get returns the machine (d.mu held).
func (d *Driver) get(name string) (*machine, error) {
	m, ok := d.vms[name]
	if !ok {
		return nil, notFound(name)
	}
	return m, nil
}

// setState changes state and notifies subscribers (d.mu held).
func (d *Driver) setState(name string, m *machine, st vmm.State, reason string) {
	if m.state == vmm.StateRunning && st != vmm.StateRunning {
		m.cpuUsed += d.now().Sub(m.started)
	}
	if st == vmm.StateRunning && m.state != vmm.StateRunning {
		m.started = d.now()
	}
	m.state = st
	ev := vmm.Event{VM: name, State: st, Reason: reason, Time: d.now()}
	for ch := range d.subs {
		select {
		case ch <- ev:
		default: // slow reader: drop rather than block the driver
		}
	}
}

func (d *Driver) view(m *machine) vmm.VM {
	return vmm.VM{Name: m.spec.Name, State: m.state, Rescue: m.rescue != nil, Spec: cloneSpec(m.spec)}
}

func cloneSpec(s vmm.Spec) vmm.Spec {
	s.Disks = slices.Clone(s.Disks)
	s.NICs = slices.Clone(s.NICs)
	s.Limits.Disks = maps.Clone(s.Limits.Disks)
	s.Limits.NICs = maps.Clone(s.Limits.NICs)
	if s.CloudInit != nil {
		c := *s.CloudInit
		s.CloudInit = &c
	}
	if s.Template != nil {
		t := *s.Template
		s.Template = &t
	}
	return s
}

// Create defines a machine.
func (d *Driver) Create(ctx context.Context, spec vmm.Spec) (vmm.VM, error) {
	if err := d.enter(ctx, "Create", spec.Name, spec); err != nil {
		return vmm.VM{}, err
	}
	defer d.mu.Unlock()
	if err := spec.Validate(); err != nil {
		return vmm.VM{}, err
	}
	if _, ok := d.vms[spec.Name]; ok {
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrAlreadyExists, "vm %q", spec.Name)
	}
	m := &machine{spec: cloneSpec(spec.Normalize()), state: vmm.StateStopped, consolePass: spec.Console.Password, guestPass: map[string]string{}}
	d.vms[spec.Name] = m
	d.setState(spec.Name, m, vmm.StateStopped, "defined")
	return d.view(m), nil
}

// Start boots a stopped machine.
func (d *Driver) Start(ctx context.Context, name string) error {
	if err := d.enter(ctx, "Start", name, nil); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if m.state != vmm.StateStopped && m.state != vmm.StateCrashed {
		return conflict(name, m.state, "start")
	}
	d.setState(name, m, vmm.StateRunning, "booted")
	return nil
}

// Shutdown asks the guest to power off.
func (d *Driver) Shutdown(ctx context.Context, name string, timeout time.Duration) error {
	if err := d.enter(ctx, "Shutdown", name, timeout); err != nil {
		return err
	}
	m, err := d.get(name)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	if m.state != vmm.StateRunning {
		d.mu.Unlock()
		return conflict(name, m.state, "shut down")
	}
	if !d.ignoreShutdown {
		d.setState(name, m, vmm.StateStopped, "shutdown")
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-t.C:
	}
	return virtplane.Errorf(virtplane.ErrTimeout, "vm %q did not shut down within %s", name, timeout)
}

// Stop powers a machine off.
func (d *Driver) Stop(ctx context.Context, name string) error {
	if err := d.enter(ctx, "Stop", name, nil); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if m.state == vmm.StateStopped {
		return conflict(name, m.state, "stop")
	}
	d.setState(name, m, vmm.StateStopped, "destroyed")
	return nil
}

// Reboot resets a running machine.
func (d *Driver) Reboot(ctx context.Context, name string) error {
	return d.transition(ctx, "Reboot", name, vmm.StateRunning, vmm.StateRunning, "rebooted")
}

// Suspend pauses a running machine.
func (d *Driver) Suspend(ctx context.Context, name string) error {
	return d.transition(ctx, "Suspend", name, vmm.StateRunning, vmm.StatePaused, "paused")
}

// Resume continues a paused machine.
func (d *Driver) Resume(ctx context.Context, name string) error {
	return d.transition(ctx, "Resume", name, vmm.StatePaused, vmm.StateRunning, "resumed")
}

func (d *Driver) transition(ctx context.Context, method, name string, from, to vmm.State, reason string) error {
	if err := d.enter(ctx, method, name, nil); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if m.state != from {
		return conflict(name, m.state, strings.ToLower(method))
	}
	d.setState(name, m, to, reason)
	return nil
}

// Delete removes a stopped machine.
func (d *Driver) Delete(ctx context.Context, name string) error {
	if err := d.enter(ctx, "Delete", name, nil); err != nil {
		return err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if m.state != vmm.StateStopped && m.state != vmm.StateCrashed {
		return conflict(name, m.state, "delete")
	}
	d.setState(name, m, vmm.StateStopped, "undefined")
	delete(d.vms, name)
	return nil
}

// Get returns one machine.
func (d *Driver) Get(ctx context.Context, name string) (vmm.VM, error) {
	if err := d.enter(ctx, "Get", name, nil); err != nil {
		return vmm.VM{}, err
	}
	defer d.mu.Unlock()
	m, err := d.get(name)
	if err != nil {
		return vmm.VM{}, err
	}
	return d.view(m), nil
}

// List returns all machines sorted by name.
func (d *Driver) List(ctx context.Context) ([]vmm.VM, error) {
	if err := d.enter(ctx, "List", "", nil); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	out := make([]vmm.VM, 0, len(d.vms))
	for _, name := range slices.Sorted(maps.Keys(d.vms)) {
		out = append(out, d.view(d.vms[name]))
	}
	return out, nil
}

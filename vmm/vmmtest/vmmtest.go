package vmmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// Harness is what a driver hands the suite.
type Harness struct {
	Driver vmm.Driver
	// Prefix starts the name of every machine the suite creates ("vpt-").
	Prefix string
	// Spec returns a valid spec of a machine called name that the driver
	// can create and start. The suite creates at most a few of them. The
	// spec should have at least one disk and one NIC with a MAC when the
	// driver claims Limiter, so per-disk and per-NIC limits are tested.
	Spec func(t *testing.T, name string) vmm.Spec
	// WaitBooted, when set, blocks until the guest of a machine has booted
	// once more since the previous call for that machine (for example: one
	// more boot marker on its serial console). The suite calls it after every
	// start, reboot and rescue switch.
	WaitBooted func(ctx context.Context, name string) error
	// Alive, when set, checks that a running guest makes progress (a
	// heartbeat on its console); used after resume, revert and migration.
	// It gets the driver the machine runs on.
	Alive func(ctx context.Context, d vmm.Driver, name string) error
	// GuestIgnoresShutdown says that the guest does not act on a graceful
	// shutdown request (no ACPI handling): Shutdown must then time out.
	GuestIgnoresShutdown bool
	// NoMemorySnapshots says that the driver returns ErrNotImplemented for
	// snapshots with memory (LXD without CRIU).
	NoMemorySnapshots bool
	// NoIOWeight says that the host has no IO weight controller (cgroup v2
	// io.weight needs the BFQ scheduler): the driver must refuse IO weights
	// with ErrNotImplemented.
	NoIOWeight bool
	// NoLiveNICLimits says that the host cannot apply NIC bandwidth limits
	// to a running machine (a kernel without the needed tc qdiscs): the
	// driver must then refuse with ErrNotImplemented and change nothing.
	NoLiveNICLimits bool
	// GuestAgent says that the guest runs an agent; without one, the suite
	// checks that agent calls fail with ErrUnavailable.
	GuestAgent bool
	// Rescue is the rescue image used when the driver claims Rescuer.
	Rescue vmm.RescueSpec
	// Migration, when set and the driver claims Migrator, prepares a
	// migration target and returns it with a driver connected to it.
	Migration func(t *testing.T) (vmm.MigrationTarget, vmm.Driver)
	// DiskSize is the virtual size in bytes of the first disk of Spec; the
	// suite grows that disk when the driver claims DiskResizer (0: the
	// driver does not check sizes against the image, like the fake).
	DiskSize int64
	// ExtraDisk returns the source of a small disk, not in Spec, that the
	// suite attaches to the machine and detaches again (running and
	// stopped) when the driver claims DiskAttacher; the harness removes it.
	ExtraDisk func(t *testing.T) vmm.DiskSource
	// CopyTarget returns the source of an empty volume of size bytes (0:
	// as large as the first disk of Spec), which the suite moves that disk
	// of the running machine to (and back) when the driver claims
	// DiskCopier.
	CopyTarget func(t *testing.T, size int64) vmm.DiskSource
	// Templates says that the driver applies virtual hardware templates
	// (vmm.Spec.Template); without, it must refuse a spec with one.
	Templates bool
	// BootTimeout bounds each wait for a guest; default 2 minutes.
	BootTimeout time.Duration
}

// Factory returns a fresh harness for one top-level test of the suite.
type Factory func(t *testing.T) Harness

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("InvalidSpec", func(t *testing.T) { testInvalidSpec(t, factory(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, factory(t)) })
	t.Run("Template", func(t *testing.T) { testTemplate(t, factory(t)) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, factory(t)) })
}

func (h Harness) name(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return h.Prefix + "ct-" + hex.EncodeToString(b)
}

func (h Harness) bootTimeout() time.Duration {
	if h.BootTimeout > 0 {
		return h.BootTimeout
	}
	return 2 * time.Minute
}

// cleanup removes the machine at the end of the test, whatever state it is in.
func cleanup(t *testing.T, d vmm.Driver, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if vm, err := d.Get(ctx, name); err == nil && vm.State != vmm.StateStopped {
			_ = d.Stop(ctx, name)
		}
		_ = d.Delete(ctx, name)
	})
}

func requireClass(t *testing.T, err error, class error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.ErrorIs(t, err, class, msgAndArgs...)
}

func testInvalidSpec(t *testing.T, h Harness) {
	ctx := t.Context()
	good := h.Spec(t, h.name(t))
	require.NoError(t, good.Validate(), "the harness spec must be valid")
	cases := []struct {
		name   string
		mutate func(*vmm.Spec)
	}{
		{"empty name", func(s *vmm.Spec) { s.Name = "" }},
		{"name with markup", func(s *vmm.Spec) { s.Name = "a<b>" }},
		{"name with slash", func(s *vmm.Spec) { s.Name = "../etc" }},
		{"zero vcpus", func(s *vmm.Spec) { s.VCPUs = 0 }},
		{"tiny memory", func(s *vmm.Spec) { s.MemoryMiB = 1 }},
		{"bad disk kind", func(s *vmm.Spec) {
			s.Disks = append(s.Disks, vmm.Disk{Target: "vdz", Source: vmm.DiskSource{Kind: "nfs", Path: "/x", Format: "raw"}})
		}},
		{"relative disk path", func(s *vmm.Spec) {
			s.Disks = append(s.Disks, vmm.Disk{Target: "vdz", Source: vmm.DiskSource{Kind: "file", Path: "x.img", Format: "raw"}})
		}},
		{"disk path with newline", func(s *vmm.Spec) {
			s.Disks = append(s.Disks, vmm.Disk{Target: "vdz", Source: vmm.DiskSource{Kind: "file", Path: "/a\n<b/>", Format: "raw"}})
		}},
		{"bad target", func(s *vmm.Spec) {
			s.Disks = append(s.Disks, vmm.Disk{Target: "vd'a", Source: vmm.DiskSource{Kind: "file", Path: "/x", Format: "raw"}})
		}},
		{"bad mac", func(s *vmm.Spec) { s.NICs = append(s.NICs, vmm.NIC{Bridge: "br0", MAC: "zz:00:00:00:00:01"}) }},
		{"bridge with quote", func(s *vmm.Spec) { s.NICs = append(s.NICs, vmm.NIC{Bridge: `br"0`}) }},
		{"bad nic model", func(s *vmm.Spec) { s.NICs = append(s.NICs, vmm.NIC{Bridge: "br0", Model: "ne2k'"}) }},
		{"limits for unknown disk", func(s *vmm.Spec) {
			s.Limits.Disks = map[string]vmm.DiskLimits{"vdy": {ReadIOPS: 1}}
		}},
		{"console type", func(s *vmm.Spec) { s.Console.Type = "rdp" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := good
			s.Name = h.name(t)
			s.Disks = slices.Clone(good.Disks)
			s.NICs = slices.Clone(good.NICs)
			c.mutate(&s)
			_, err := h.Driver.Create(ctx, s)
			if err == nil {
				cleanup(t, h.Driver, s.Name)
			}
			requireClass(t, err, virtplane.ErrInvalidArgument)
			_, err = h.Driver.Get(ctx, s.Name)
			assert.Error(t, err, "a rejected spec must leave nothing behind")
		})
	}
}

// testTemplate: a template is applied or refused, never ignored; a bad one
// is refused by every driver.
func testTemplate(t *testing.T, h Harness) {
	ctx := t.Context()
	s := h.Spec(t, h.name(t))
	s.Template = &vmm.Template{Machine: "pc", NICModel: "e1000", Video: "vga"}
	_, err := h.Driver.Create(ctx, s)
	if err == nil {
		cleanup(t, h.Driver, s.Name)
	}
	if h.Templates {
		require.NoError(t, err)
		_, err = h.Driver.Get(ctx, s.Name)
		require.NoError(t, err)
	} else {
		requireClass(t, err, virtplane.ErrInvalidArgument, "a driver without templates refuses one")
		_, err = h.Driver.Get(ctx, s.Name)
		assert.Error(t, err, "a refused spec leaves nothing behind")
	}
	bad := h.Spec(t, h.name(t))
	bad.Template = &vmm.Template{Video: "matrox"}
	_, err = h.Driver.Create(ctx, bad)
	if err == nil {
		cleanup(t, h.Driver, bad.Name)
	}
	requireClass(t, err, virtplane.ErrInvalidArgument, "an invalid template")
}

func testNotFound(t *testing.T, h Harness) {
	ctx := t.Context()
	name := h.name(t)
	d := h.Driver
	_, err := d.Get(ctx, name)
	requireClass(t, err, virtplane.ErrNotFound)
	for op, f := range map[string]func() error{
		"Start":  func() error { return d.Start(ctx, name) },
		"Stop":   func() error { return d.Stop(ctx, name) },
		"Delete": func() error { return d.Delete(ctx, name) },
		"Resume": func() error { return d.Resume(ctx, name) },
	} {
		requireClass(t, f(), virtplane.ErrNotFound, op)
	}
	if a, ok := vmm.As[vmm.MigrationAborter](d); ok {
		requireClass(t, a.AbortMigration(ctx, name), virtplane.ErrNotFound, "AbortMigration")
	}
	vms, err := d.List(ctx)
	require.NoError(t, err)
	for _, vm := range vms {
		assert.NotEqual(t, name, vm.Name)
	}
}

// lifecycle carries one machine through the ordered steps.
type lifecycle struct {
	top  *testing.T // the Lifecycle test, for cleanups that outlive a step
	h    Harness
	d    vmm.Driver
	name string
	spec vmm.Spec
	// diskSize is the size of the first disk once ResizeDisk grew it (0:
	// as Spec made it).
	diskSize int64
}

func (l *lifecycle) state(t *testing.T) vmm.State {
	t.Helper()
	vm, err := l.d.Get(t.Context(), l.name)
	require.NoError(t, err)
	return vm.State
}

func (l *lifecycle) waitState(t *testing.T, d vmm.Driver, want vmm.State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), l.h.bootTimeout())
	defer cancel()
	var last vmm.State
	for {
		vm, err := d.Get(ctx, l.name)
		if err == nil {
			last = vm.State
			if last == want {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("vm %s: state %q, want %q (%v)", l.name, last, want, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *lifecycle) booted(t *testing.T) {
	t.Helper()
	if l.h.WaitBooted == nil {
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), l.h.bootTimeout())
	defer cancel()
	require.NoError(t, l.h.WaitBooted(ctx, l.name), "guest did not boot")
}

func (l *lifecycle) alive(t *testing.T, d vmm.Driver) {
	t.Helper()
	if l.h.Alive == nil {
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), l.h.bootTimeout())
	defer cancel()
	require.NoError(t, l.h.Alive(ctx, d, l.name), "guest makes no progress")
}

func testLifecycle(t *testing.T, h Harness) {
	ctx := t.Context()
	l := &lifecycle{top: t, h: h, d: h.Driver, name: h.name(t)}
	l.spec = h.Spec(t, l.name)
	d := h.Driver
	cleanup(t, d, l.name)

	var events <-chan vmm.Event
	if w, ok := vmm.As[vmm.EventWatcher](d); ok {
		ectx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		ch, err := w.Events(ectx)
		require.NoError(t, err)
		events = ch
	}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Create", l.create},
		{"Start", l.start},
		{"Events", func(t *testing.T) { l.events(t, events) }},
		{"SuspendResume", l.suspendResume},
		{"Usage", l.usage},
		{"Limits", l.limits},
		{"ResizeDisk", l.resizeDisk},
		{"AttachDisk", l.attachDisk},
		{"CopyDisk", l.copyDisk},
		{"Console", l.console},
		{"GuestAgent", l.guestAgent},
		{"Snapshots", l.snapshots},
		{"Reboot", l.reboot},
		{"Shutdown", l.shutdown},
		{"Rescue", l.rescue},
		{"Migrate", l.migrate},
		{"StopDelete", l.stopDelete},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.Fatalf("step %s failed; later steps depend on it", s.name)
		}
	}
}

func (l *lifecycle) create(t *testing.T) {
	ctx := t.Context()
	vm, err := l.d.Create(ctx, l.spec)
	require.NoError(t, err)
	assert.Equal(t, l.name, vm.Name)
	assert.Equal(t, vmm.StateStopped, vm.State)

	got, err := l.d.Get(ctx, l.name)
	require.NoError(t, err)
	assert.Equal(t, vmm.StateStopped, got.State)
	assert.Equal(t, l.spec.VCPUs, got.Spec.VCPUs)
	assert.Equal(t, l.spec.MemoryMiB, got.Spec.MemoryMiB)
	assert.Len(t, got.Spec.Disks, len(l.spec.Disks))
	assert.Len(t, got.Spec.NICs, len(l.spec.NICs))
	for i, n := range l.spec.NICs {
		if n.MAC != "" && i < len(got.Spec.NICs) {
			assert.Equal(t, vmm.Spec{NICs: []vmm.NIC{n}}.Normalize().NICs[0].MAC, got.Spec.NICs[i].MAC)
		}
	}

	_, err = l.d.Create(ctx, l.spec)
	requireClass(t, err, virtplane.ErrAlreadyExists)

	vms, err := l.d.List(ctx)
	require.NoError(t, err)
	names := make([]string, 0, len(vms))
	for _, vm := range vms {
		names = append(names, vm.Name)
	}
	assert.Contains(t, names, l.name)
	assert.True(t, slices.IsSorted(names), "List must sort by name: %v", names)
}

func (l *lifecycle) start(t *testing.T) {
	ctx := t.Context()
	require.NoError(t, l.d.Start(ctx, l.name))
	assert.Equal(t, vmm.StateRunning, l.state(t))
	requireClass(t, l.d.Start(ctx, l.name), virtplane.ErrConflict, "start twice")
	requireClass(t, l.d.Delete(ctx, l.name), virtplane.ErrConflict, "delete while running")
	l.booted(t)
}

func (l *lifecycle) events(t *testing.T, events <-chan vmm.Event) {
	if events == nil {
		t.Skip("driver does not implement vmm.EventWatcher")
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			require.True(t, ok, "event stream closed early")
			if ev.VM == l.name && ev.State == vmm.StateRunning {
				assert.False(t, ev.Time.IsZero())
				return
			}
		case <-timeout:
			t.Fatal("no running event for the started machine")
		}
	}
}

func (l *lifecycle) suspendResume(t *testing.T) {
	ctx := t.Context()
	require.NoError(t, l.d.Suspend(ctx, l.name))
	assert.Equal(t, vmm.StatePaused, l.state(t))
	requireClass(t, l.d.Suspend(ctx, l.name), virtplane.ErrConflict, "suspend twice")
	require.NoError(t, l.d.Resume(ctx, l.name))
	assert.Equal(t, vmm.StateRunning, l.state(t))
	requireClass(t, l.d.Resume(ctx, l.name), virtplane.ErrConflict, "resume a running machine")
	l.alive(t, l.d)
}

func (l *lifecycle) usage(t *testing.T) {
	u, ok := vmm.As[vmm.UsageReporter](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.UsageReporter")
	}
	got, err := u.Usage(t.Context(), l.name)
	require.NoError(t, err)
	assert.Positive(t, got.CPUTime, "a machine that ran has used CPU")
	assert.Positive(t, got.MemoryBytes)
	_, err = u.Usage(t.Context(), l.h.name(t))
	requireClass(t, err, virtplane.ErrNotFound)
}

func (l *lifecycle) limits(t *testing.T) {
	lim, ok := vmm.As[vmm.Limiter](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.Limiter")
	}
	ctx := t.Context()
	want := vmm.Limits{CPUWeight: 300}
	if len(l.spec.Disks) > 0 {
		want.Disks = map[string]vmm.DiskLimits{l.spec.Disks[0].Target: {ReadIOPS: 500, WriteIOPS: 400, ReadBytesSec: 10 << 20, WriteBytesSec: 5 << 20}}
	}
	require.NoError(t, lim.SetLimits(ctx, l.name, want))
	vm, err := l.d.Get(ctx, l.name)
	require.NoError(t, err)
	assert.Equal(t, want.CPUWeight, vm.Spec.Limits.CPUWeight)
	assert.Equal(t, want.Disks, vm.Spec.Limits.Disks)
	assert.Equal(t, vmm.StateRunning, vm.State, "limits apply live")

	err = lim.SetLimits(ctx, l.name, vmm.Limits{IOWeight: 200})
	vm, gerr := l.d.Get(ctx, l.name)
	require.NoError(t, gerr)
	if l.h.NoIOWeight {
		requireClass(t, err, virtplane.ErrNotImplemented, "io weight")
		assert.Zero(t, vm.Spec.Limits.IOWeight, "a refused change leaves nothing behind")
	} else {
		require.NoError(t, err)
		assert.Equal(t, uint64(200), vm.Spec.Limits.IOWeight)
	}
	assert.Equal(t, want.CPUWeight, vm.Spec.Limits.CPUWeight, "limits not named stay")

	for _, n := range l.spec.NICs {
		if n.MAC == "" {
			continue
		}
		mac := vmm.Spec{NICs: []vmm.NIC{n}}.Normalize().NICs[0].MAC
		nics := map[string]vmm.NICLimits{mac: {InboundKiBs: 1000, OutboundKiBs: 2000}}
		err := lim.SetLimits(ctx, l.name, vmm.Limits{NICs: nics})
		vm, gerr := l.d.Get(ctx, l.name)
		require.NoError(t, gerr)
		if l.h.NoLiveNICLimits {
			requireClass(t, err, virtplane.ErrNotImplemented, "live NIC limits")
			assert.Empty(t, vm.Spec.Limits.NICs, "a refused change leaves nothing behind")
		} else {
			require.NoError(t, err)
			assert.Equal(t, nics, vm.Spec.Limits.NICs)
		}
		assert.Equal(t, want.CPUWeight, vm.Spec.Limits.CPUWeight, "limits not named stay")
		assert.Equal(t, want.Disks, vm.Spec.Limits.Disks, "limits not named stay")
		break
	}

	// A CPU cap, then its removal; the weight stays.
	require.NoError(t, lim.SetLimits(ctx, l.name, vmm.Limits{CPUCapPercent: 150}))
	vm, err = l.d.Get(ctx, l.name)
	require.NoError(t, err)
	assert.Equal(t, uint64(150), vm.Spec.Limits.CPUCapPercent, "cpu cap")
	assert.Equal(t, want.CPUWeight, vm.Spec.Limits.CPUWeight, "limits not named stay")
	require.NoError(t, lim.SetLimits(ctx, l.name, vmm.Limits{IOWeight: 0, CPUWeight: want.CPUWeight}))
	vm, err = l.d.Get(ctx, l.name)
	require.NoError(t, err)
	assert.Equal(t, uint64(150), vm.Spec.Limits.CPUCapPercent, "a zero cap leaves the cap")
	require.NoError(t, lim.SetLimits(ctx, l.name, vmm.Limits{CPUCapPercent: vmm.NoCap}))
	vm, err = l.d.Get(ctx, l.name)
	require.NoError(t, err)
	assert.Zero(t, vm.Spec.Limits.CPUCapPercent, "NoCap removes the cap")
	requireClass(t, lim.SetLimits(ctx, l.name, vmm.Limits{CPUCapPercent: vmm.MaxCPUCapPercent + 1}), virtplane.ErrInvalidArgument, "huge cap")

	requireClass(t, lim.SetLimits(ctx, l.name, vmm.Limits{Disks: map[string]vmm.DiskLimits{"vdy": {ReadIOPS: 1}}}), virtplane.ErrInvalidArgument, "unknown disk")
	requireClass(t, lim.SetLimits(ctx, l.name, vmm.Limits{CPUWeight: 1 << 40}), virtplane.ErrInvalidArgument, "huge weight")
}

func (l *lifecycle) console(t *testing.T) {
	c, ok := vmm.As[vmm.Consoler](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.Consoler")
	}
	if l.spec.Console.Type == "" {
		t.Skip("harness spec has no console")
	}
	ctx := t.Context()
	got, err := c.Console(ctx, l.name)
	require.NoError(t, err)
	assert.Equal(t, l.spec.Console.Type, got.Type)
	assert.Positive(t, got.Port)
	assert.NotEmpty(t, got.Host)
	require.NoError(t, c.SetConsolePassword(ctx, l.name, "n3wpass"))
	got, err = c.Console(ctx, l.name)
	require.NoError(t, err)
	assert.Equal(t, "n3wpass", got.Password)
	requireClass(t, c.SetConsolePassword(ctx, l.name, "bad\npass"), virtplane.ErrInvalidArgument)
}

func (l *lifecycle) guestAgent(t *testing.T) {
	g, ok := vmm.As[vmm.GuestAgent](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.GuestAgent")
	}
	ctx := t.Context()
	if !l.h.GuestAgent {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := g.GuestExec(actx, l.name, []string{"echo", "hi"})
		requireClass(t, err, virtplane.ErrUnavailable, "no agent in the guest")
		return
	}
	res, err := g.GuestExec(ctx, l.name, []string{"echo", "hello", "agent"})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "hello agent\n", string(res.Stdout))
	_, err = g.GuestExec(ctx, l.name, nil)
	requireClass(t, err, virtplane.ErrInvalidArgument)
	ifs, err := g.GuestAddresses(ctx, l.name)
	require.NoError(t, err)
	assert.NotEmpty(t, ifs)
	require.NoError(t, g.SetGuestPassword(ctx, l.name, "root", "s3cret-Pw"))
}

func (l *lifecycle) snapshots(t *testing.T) {
	s, ok := vmm.As[vmm.Snapshotter](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.Snapshotter")
	}
	ctx := t.Context()
	var want []string

	// A memory snapshot of the running machine.
	err := s.CreateSnapshot(ctx, l.name, vmm.SnapshotSpec{Name: "s-mem", Memory: true})
	memory := !l.h.NoMemorySnapshots
	if memory {
		require.NoError(t, err)
		want = append(want, "s-mem")
		assert.Equal(t, vmm.StateRunning, l.state(t), "a memory snapshot leaves the machine running")
	} else {
		requireClass(t, err, virtplane.ErrNotImplemented)
	}
	requireClass(t, s.CreateSnapshot(ctx, l.name, vmm.SnapshotSpec{Name: "bad/name"}), virtplane.ErrInvalidArgument)

	// A disk snapshot of the stopped machine, then a resize it must undo.
	require.NoError(t, l.d.Stop(ctx, l.name))
	l.waitState(t, l.d, vmm.StateStopped)
	require.NoError(t, s.CreateSnapshot(ctx, l.name, vmm.SnapshotSpec{Name: "s-off"}))
	want = append(want, "s-off")
	requireClass(t, s.CreateSnapshot(ctx, l.name, vmm.SnapshotSpec{Name: "s-off"}), virtplane.ErrAlreadyExists)
	resized := false
	if r, ok := vmm.As[vmm.Resizer](l.d); ok {
		require.NoError(t, r.Resize(ctx, l.name, vmm.Resources{VCPUs: l.spec.VCPUs + 1, MemoryMiB: l.spec.MemoryMiB + 64}))
		vm, err := l.d.Get(ctx, l.name)
		require.NoError(t, err)
		assert.Equal(t, l.spec.VCPUs+1, vm.Spec.VCPUs)
		assert.Equal(t, l.spec.MemoryMiB+64, vm.Spec.MemoryMiB)
		requireClass(t, r.Resize(ctx, l.name, vmm.Resources{VCPUs: 0, MemoryMiB: 64}), virtplane.ErrInvalidArgument)
		resized = true
	}

	list, err := s.ListSnapshots(ctx, l.name)
	require.NoError(t, err)
	var names []string
	for _, sn := range list {
		names = append(names, sn.Name)
	}
	assert.Equal(t, want, names)

	require.NoError(t, s.RevertSnapshot(ctx, l.name, "s-off"))
	vm, err := l.d.Get(ctx, l.name)
	require.NoError(t, err)
	assert.Equal(t, vmm.StateStopped, vm.State, "revert to a snapshot of a stopped machine")
	if resized {
		assert.Equal(t, l.spec.VCPUs, vm.Spec.VCPUs, "revert restores the CPU count")
		assert.Equal(t, l.spec.MemoryMiB, vm.Spec.MemoryMiB, "revert restores the memory size")
	}
	requireClass(t, s.RevertSnapshot(ctx, l.name, "no-such"), virtplane.ErrNotFound)

	if memory {
		require.NoError(t, s.RevertSnapshot(ctx, l.name, "s-mem"))
		l.waitState(t, l.d, vmm.StateRunning)
		l.alive(t, l.d)
	} else {
		require.NoError(t, l.d.Start(ctx, l.name))
		l.booted(t)
	}
	for _, n := range want {
		require.NoError(t, s.DeleteSnapshot(ctx, l.name, n))
	}
	requireClass(t, s.DeleteSnapshot(ctx, l.name, "s-off"), virtplane.ErrNotFound)
	list, err = s.ListSnapshots(ctx, l.name)
	require.NoError(t, err)
	assert.Empty(t, list)
}

func (l *lifecycle) reboot(t *testing.T) {
	require.NoError(t, l.d.Reboot(t.Context(), l.name))
	l.waitState(t, l.d, vmm.StateRunning)
	l.booted(t)
	l.alive(t, l.d)
}

func (l *lifecycle) shutdown(t *testing.T) {
	ctx := t.Context()
	if l.h.GuestIgnoresShutdown {
		err := l.d.Shutdown(ctx, l.name, 2*time.Second)
		requireClass(t, err, virtplane.ErrTimeout, "a guest that ignores shutdown")
		assert.Equal(t, vmm.StateRunning, l.state(t), "a timed-out shutdown leaves the machine running")
		return
	}
	require.NoError(t, l.d.Shutdown(ctx, l.name, l.h.bootTimeout()))
	assert.Equal(t, vmm.StateStopped, l.state(t))
	requireClass(t, l.d.Shutdown(ctx, l.name, time.Second), virtplane.ErrConflict, "shut down a stopped machine")
	require.NoError(t, l.d.Start(ctx, l.name))
	l.booted(t)
}

func (l *lifecycle) rescue(t *testing.T) {
	r, ok := vmm.As[vmm.Rescuer](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.Rescuer")
	}
	ctx := t.Context()
	requireClass(t, r.EnterRescue(ctx, l.name, vmm.RescueSpec{}), virtplane.ErrInvalidArgument)
	require.NoError(t, r.EnterRescue(ctx, l.name, l.h.Rescue))
	vm, err := l.d.Get(ctx, l.name)
	require.NoError(t, err)
	assert.True(t, vm.Rescue)
	assert.Equal(t, vmm.StateRunning, vm.State)
	assert.Len(t, vm.Spec.Disks, len(l.spec.Disks), "rescue keeps the disks attached")
	l.booted(t)
	requireClass(t, r.EnterRescue(ctx, l.name, l.h.Rescue), virtplane.ErrConflict, "enter rescue twice")

	require.NoError(t, r.ExitRescue(ctx, l.name))
	vm, err = l.d.Get(ctx, l.name)
	require.NoError(t, err)
	assert.False(t, vm.Rescue)
	assert.Equal(t, vmm.StateRunning, vm.State)
	l.booted(t)
	requireClass(t, r.ExitRescue(ctx, l.name), virtplane.ErrConflict, "exit rescue twice")
}

func (l *lifecycle) migrate(t *testing.T) {
	m, ok := vmm.As[vmm.Migrator](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.Migrator")
	}
	if l.h.Migration == nil {
		t.Skip("harness has no migration target")
	}
	ctx := t.Context()
	target, peer := l.h.Migration(l.top)
	cleanup(l.top, peer, l.name)

	// Aborting when no migration runs changes nothing. (Aborting one in
	// progress needs a migration slow enough to catch: drivers test that
	// with their own means of holding one.)
	if a, ok := vmm.As[vmm.MigrationAborter](l.d); ok {
		require.NoError(t, a.AbortMigration(ctx, l.name), "no migration job: not an error")
		assert.Equal(t, vmm.StateRunning, l.state(t), "still running after an abort without a job")
	}

	// A disk the machine does not have: refused (or disk copies are not
	// implemented at all), and nothing moved.
	bogus := target
	bogus.Disks = map[string]vmm.DiskSource{"vdz": {Kind: "file", Path: "/nonexistent/vdz.qcow2", Format: "qcow2"}}
	err := m.Migrate(ctx, l.name, bogus, nil)
	require.Error(t, err)
	assert.True(t, errors.Is(err, virtplane.ErrInvalidArgument) || errors.Is(err, virtplane.ErrNotImplemented), "copy of an unknown disk: %v", err)
	assert.Equal(t, vmm.StateRunning, l.state(t), "still running on the source")
	_, err = peer.Get(ctx, l.name)
	requireClass(t, err, virtplane.ErrNotFound, "nothing on the target")
	var reports []vmm.MigrationProgress
	require.NoError(t, m.Migrate(ctx, l.name, target, func(p vmm.MigrationProgress) { reports = append(reports, p) }))
	vm, err := peer.Get(ctx, l.name)
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, vm.State, "running on the target")
	l.alive(t, peer)
	_, err = l.d.Get(ctx, l.name)
	requireClass(t, err, virtplane.ErrNotFound, "gone from the source")
	if len(reports) > 0 {
		last := reports[len(reports)-1]
		assert.LessOrEqual(t, last.DataProcessed, last.DataTotal+last.DataProcessed)
	}
	t.Logf("migration progress reports: %d", len(reports))

	// The last step stops and deletes the machine where it now runs.
	l.d = peer
}

// resizeDisk grows the first disk of the running machine.
func (l *lifecycle) resizeDisk(t *testing.T) {
	r, ok := vmm.As[vmm.DiskResizer](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.DiskResizer")
	}
	if len(l.spec.Disks) == 0 {
		t.Skip("the harness spec has no disk")
	}
	ctx := t.Context()
	target := l.spec.Disks[0].Target
	grown := l.h.DiskSize + 64<<20
	requireClass(t, r.ResizeDisk(ctx, l.name, target, 0), virtplane.ErrInvalidArgument, "size 0")
	requireClass(t, r.ResizeDisk(ctx, l.name, "vdz", grown), virtplane.ErrNotFound, "unknown disk")
	requireClass(t, r.ResizeDisk(ctx, "vpt-nope", target, grown), virtplane.ErrNotFound, "unknown machine")
	require.NoError(t, r.ResizeDisk(ctx, l.name, target, grown))
	if l.h.DiskSize > 0 {
		l.diskSize = grown
	}
	require.NoError(t, r.ResizeDisk(ctx, l.name, target, grown), "the current size again")
	requireClass(t, r.ResizeDisk(ctx, l.name, target, grown-32<<20), virtplane.ErrInvalidArgument, "disks only grow")
	assert.Equal(t, vmm.StateRunning, l.state(t), "the machine keeps running")
}

// disks returns the targets of the machine's disks.
func (l *lifecycle) disks(t *testing.T) []string {
	t.Helper()
	vm, err := l.d.Get(t.Context(), l.name)
	require.NoError(t, err)
	var targets []string
	for _, d := range vm.Spec.Disks {
		targets = append(targets, d.Target)
	}
	return targets
}

// attachDisk hotplugs a disk into the running machine and unplugs it.
func (l *lifecycle) attachDisk(t *testing.T) {
	a, ok := vmm.As[vmm.DiskAttacher](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.DiskAttacher")
	}
	require.NotNil(t, l.h.ExtraDisk, "the driver claims DiskAttacher: the harness must give ExtraDisk")
	ctx := t.Context()
	extra := vmm.Disk{Target: "vdh", Source: l.h.ExtraDisk(t)}
	requireClass(t, a.AttachDisk(ctx, l.name, vmm.Disk{Target: "xyz", Source: extra.Source}), virtplane.ErrInvalidArgument, "bad target")
	requireClass(t, a.AttachDisk(ctx, "vpt-nope", extra), virtplane.ErrNotFound, "unknown machine")
	if len(l.spec.Disks) > 0 {
		requireClass(t, a.AttachDisk(ctx, l.name, vmm.Disk{Target: l.spec.Disks[0].Target, Source: extra.Source}), virtplane.ErrAlreadyExists, "a target in use")
	}
	before := l.disks(t)
	require.NoError(t, a.AttachDisk(ctx, l.name, extra))
	assert.Contains(t, l.disks(t), extra.Target, "attached while running")
	requireClass(t, a.AttachDisk(ctx, l.name, extra), virtplane.ErrAlreadyExists, "attach twice")
	assert.Equal(t, vmm.StateRunning, l.state(t), "the machine keeps running")

	requireClass(t, a.DetachDisk(ctx, l.name, "vdz"), virtplane.ErrNotFound, "unknown disk")
	requireClass(t, a.DetachDisk(ctx, "vpt-nope", extra.Target), virtplane.ErrNotFound, "unknown machine")
	require.NoError(t, a.DetachDisk(ctx, l.name, extra.Target))
	assert.Equal(t, before, l.disks(t), "detached while running")
	requireClass(t, a.DetachDisk(ctx, l.name, extra.Target), virtplane.ErrNotFound, "detach twice")
	assert.Equal(t, vmm.StateRunning, l.state(t), "the machine keeps running")
	if l.h.Alive != nil {
		require.NoError(t, l.h.Alive(ctx, l.d, l.name), "guest makes no progress after the unplug")
	}
}

// source returns the source of the machine's disk at target.
func (l *lifecycle) source(t *testing.T, target string) vmm.DiskSource {
	t.Helper()
	vm, err := l.d.Get(t.Context(), l.name)
	require.NoError(t, err)
	for _, d := range vm.Spec.Disks {
		if d.Target == target {
			return d.Source
		}
	}
	t.Fatalf("machine %s has no disk %s", l.name, target)
	return vmm.DiskSource{}
}

// copyDisk moves the first disk of the running machine to another volume
// and back, the guest running on.
func (l *lifecycle) copyDisk(t *testing.T) {
	c, ok := vmm.As[vmm.DiskCopier](l.d)
	if !ok {
		t.Skip("driver does not implement vmm.DiskCopier")
	}
	require.NotNil(t, l.h.CopyTarget, "the driver claims DiskCopier: the harness must give CopyTarget")
	if len(l.spec.Disks) == 0 {
		t.Skip("the harness spec has no disk")
	}
	ctx := t.Context()
	target := l.spec.Disks[0].Target
	orig := l.source(t, target)
	dest := l.h.CopyTarget(t, l.diskSize)
	requireClass(t, c.CopyDisk(ctx, "vpt-nope", target, dest, nil), virtplane.ErrNotFound, "unknown machine")
	requireClass(t, c.CopyDisk(ctx, l.name, "vdz", dest, nil), virtplane.ErrNotFound, "unknown disk")
	reports := 0
	require.NoError(t, c.CopyDisk(ctx, l.name, target, dest, func(done, total int64) {
		reports++
		assert.LessOrEqual(t, done, total)
	}))
	assert.Positive(t, reports, "no progress reported")
	assert.Equal(t, dest.Path+dest.URL+dest.Image, l.source(t, target).Path+l.source(t, target).URL+l.source(t, target).Image, "the disk is on the copy")
	assert.Equal(t, vmm.StateRunning, l.state(t), "the machine keeps running")
	if l.h.Alive != nil {
		require.NoError(t, l.h.Alive(ctx, l.d, l.name), "guest makes no progress on the copy")
	}
	require.NoError(t, c.AbortDiskCopy(ctx, l.name, target), "no copy runs: nothing to abandon")
	require.NoError(t, c.CopyDisk(ctx, l.name, target, orig, nil), "back to the first volume")
	assert.Equal(t, orig.Path+orig.URL+orig.Image, l.source(t, target).Path+l.source(t, target).URL+l.source(t, target).Image)
	if l.h.Alive != nil {
		require.NoError(t, l.h.Alive(ctx, l.d, l.name), "guest makes no progress after the copy back")
	}
}

func (l *lifecycle) stopDelete(t *testing.T) {
	ctx := t.Context()
	require.NoError(t, l.d.Stop(ctx, l.name))
	assert.Equal(t, vmm.StateStopped, l.state(t))
	if c, ok := vmm.As[vmm.DiskCopier](l.d); ok && len(l.spec.Disks) > 0 {
		requireClass(t, c.CopyDisk(ctx, l.name, l.spec.Disks[0].Target, l.h.CopyTarget(t, l.diskSize), nil), virtplane.ErrConflict, "copy a disk of a stopped machine")
	}
	if a, ok := vmm.As[vmm.DiskAttacher](l.d); ok {
		extra := vmm.Disk{Target: "vdh", Source: l.h.ExtraDisk(t)}
		before := l.disks(t)
		require.NoError(t, a.AttachDisk(ctx, l.name, extra), "attach to a stopped machine")
		assert.Contains(t, l.disks(t), extra.Target)
		require.NoError(t, a.DetachDisk(ctx, l.name, extra.Target), "detach from a stopped machine")
		assert.Equal(t, before, l.disks(t))
	}
	if r, ok := vmm.As[vmm.DiskResizer](l.d); ok && len(l.spec.Disks) > 0 {
		requireClass(t, r.ResizeDisk(ctx, l.name, l.spec.Disks[0].Target, l.h.DiskSize+128<<20), virtplane.ErrConflict, "resize a disk of a stopped machine")
	}
	requireClass(t, l.d.Stop(ctx, l.name), virtplane.ErrConflict, "stop a stopped machine")
	requireClass(t, l.d.Suspend(ctx, l.name), virtplane.ErrConflict, "suspend a stopped machine")
	require.NoError(t, l.d.Delete(ctx, l.name))
	_, err := l.d.Get(ctx, l.name)
	requireClass(t, err, virtplane.ErrNotFound)
	if err := l.d.Delete(ctx, l.name); !errors.Is(err, virtplane.ErrNotFound) {
		t.Errorf("delete twice: %v, want ErrNotFound", err)
	}
}

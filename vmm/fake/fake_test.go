package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/fake"
	"github.com/virtplane/virtplane/vmm/vmmtest"
)

func spec(name string) vmm.Spec {
	return vmm.Spec{
		Name: name, VCPUs: 1, MemoryMiB: 128,
		Disks:   []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: "/var/lib/vm/" + name + ".qcow2", Format: "qcow2"}}},
		NICs:    []vmm.NIC{{Bridge: "br0", MAC: "52:54:00:AA:00:01"}},
		Console: vmm.ConsoleSpec{Type: "vnc", Password: "secret"},
	}
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []fake.Option
		h    func(*vmmtest.Harness)
	}{
		{"honours shutdown", nil, func(*vmmtest.Harness) {}},
		{"ignores shutdown", []fake.Option{fake.WithGuestsIgnoringShutdown()}, func(h *vmmtest.Harness) { h.GuestIgnoresShutdown = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
				d := fake.New(tc.opts...)
				h := vmmtest.Harness{
					Driver:     d,
					Templates:  true,
					Prefix:     "vpt-",
					Spec:       func(t *testing.T, name string) vmm.Spec { return spec(name) },
					GuestAgent: true,
					Rescue:     vmm.RescueSpec{ISO: "/srv/rescue.iso"},
					CopyTarget: func(*testing.T, int64) vmm.DiskSource {
						return vmm.DiskSource{Kind: "file", Path: "/srv/copy.qcow2", Format: "qcow2"}
					},
					ExtraDisk: func(*testing.T) vmm.DiskSource {
						return vmm.DiskSource{Kind: "file", Path: "/srv/extra.raw", Format: "raw"}
					},
					Migration: func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
						peer := fake.New()
						d.AddPeer("fake://peer", peer)
						return vmm.MigrationTarget{URI: "fake://peer"}, peer
					},
				}
				tc.h(&h)
				return h
			})
		})
	}
}

func TestFaultInjectionAndCallLog(t *testing.T) {
	ctx := t.Context()
	d := fake.New()
	_, err := d.Create(ctx, spec("vpt-a"))
	require.NoError(t, err)
	d.FailNext("Start", virtplane.Errorf(virtplane.ErrUnavailable, "hypervisor down"))
	require.ErrorIs(t, d.Start(ctx, "vpt-a"), virtplane.ErrUnavailable)
	vm, err := d.Get(ctx, "vpt-a")
	require.NoError(t, err)
	assert.Equal(t, vmm.StateStopped, vm.State, "a failed start changes nothing")
	require.NoError(t, d.Start(ctx, "vpt-a"), "the fault fires once")

	var methods []string
	for _, c := range d.Calls() {
		methods = append(methods, c.Method)
	}
	assert.Equal(t, []string{"Create", "Start", "Get", "Start"}, methods)
}

func TestLatencyHonoursDeadline(t *testing.T) {
	d := fake.New()
	d.SetLatency("List", time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := d.List(ctx)
	require.ErrorIs(t, err, virtplane.ErrTimeout)
}

func TestCrashAndEvents(t *testing.T) {
	ctx := t.Context()
	d := fake.New()
	ch, err := d.Events(ctx)
	require.NoError(t, err)
	_, err = d.Create(ctx, spec("vpt-c"))
	require.NoError(t, err)
	require.NoError(t, d.Start(ctx, "vpt-c"))
	d.Crash("vpt-c")
	var got []vmm.State
	for range 3 {
		got = append(got, (<-ch).State)
	}
	assert.Equal(t, []vmm.State{vmm.StateStopped, vmm.StateRunning, vmm.StateCrashed}, got)
	require.NoError(t, d.Start(ctx, "vpt-c"), "a crashed machine can start again")
}

// TestMigrateCopiesDisks: disks named in the target arrive with their new
// sources; the others keep theirs.
func TestMigrateCopiesDisks(t *testing.T) {
	ctx := t.Context()
	d, peer := fake.New(), fake.New()
	d.AddPeer("fake://peer", peer)
	s := spec("vpt-m")
	s.Disks = append(s.Disks, vmm.Disk{Target: "vdb", Source: vmm.DiskSource{Kind: "block", Path: "/dev/vg/data", Format: "raw"}})
	_, err := d.Create(ctx, s)
	require.NoError(t, err)
	require.NoError(t, d.Start(ctx, "vpt-m"))
	moved := vmm.DiskSource{Kind: "file", Path: "/srv/peer/vpt-m.qcow2", Format: "qcow2"}
	bad := vmm.MigrationTarget{URI: "fake://peer", Disks: map[string]vmm.DiskSource{"vda": {Kind: "file", Path: "relative.qcow2", Format: "qcow2"}}}
	require.ErrorIs(t, d.Migrate(ctx, "vpt-m", bad, nil), virtplane.ErrInvalidArgument)
	require.NoError(t, d.Migrate(ctx, "vpt-m", vmm.MigrationTarget{URI: "fake://peer", Disks: map[string]vmm.DiskSource{"vda": moved}}, nil))
	vm, err := peer.Get(ctx, "vpt-m")
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, vm.State)
	assert.Equal(t, moved, vm.Spec.Disks[0].Source)
	assert.Equal(t, "/dev/vg/data", vm.Spec.Disks[1].Source.Path, "a disk not listed keeps its source")
}

// TestHeldMigrationAborted: a held migration is in progress until aborted
// or released; an abort leaves the machine running here and nothing on the
// peer; a caller that goes away leaves the job running (as a killed daemon
// does), and releasing it then moves the machine.
func TestHeldMigrationAborted(t *testing.T) {
	ctx := t.Context()
	setup := func(t *testing.T) (*fake.Driver, *fake.Driver) {
		d, peer := fake.New(), fake.New()
		d.AddPeer("fake://peer", peer)
		d.HoldMigrations()
		_, err := d.Create(ctx, spec("vpt-m"))
		require.NoError(t, err)
		require.NoError(t, d.Start(ctx, "vpt-m"))
		return d, peer
	}
	migrating := func(t *testing.T, d *fake.Driver, mctx context.Context) <-chan error {
		done := make(chan error, 1)
		go func() { done <- d.Migrate(mctx, "vpt-m", vmm.MigrationTarget{URI: "fake://peer"}, nil) }()
		require.Eventually(t, func() bool { _, ok := d.MigrationJob("vpt-m"); return ok }, 5*time.Second, time.Millisecond)
		return done
	}
	where := func(t *testing.T, d, peer *fake.Driver, here bool) {
		t.Helper()
		_, derr := d.Get(ctx, "vpt-m")
		_, perr := peer.Get(ctx, "vpt-m")
		if here {
			assert.NoError(t, derr)
			assert.ErrorIs(t, perr, virtplane.ErrNotFound)
		} else {
			assert.ErrorIs(t, derr, virtplane.ErrNotFound)
			assert.NoError(t, perr)
		}
	}

	t.Run("abort", func(t *testing.T) {
		d, peer := setup(t)
		done := migrating(t, d, ctx)
		injected := virtplane.Errorf(virtplane.ErrUnavailable, "injected")
		d.FailNext("AbortMigration", injected)
		require.ErrorIs(t, d.AbortMigration(ctx, "vpt-m"), injected)
		_, ok := d.MigrationJob("vpt-m")
		assert.True(t, ok, "a failed abort leaves the job")
		require.NoError(t, d.AbortMigration(ctx, "vpt-m"))
		assert.ErrorIs(t, <-done, virtplane.ErrCanceled, "the caller learns of the abort")
		_, ok = d.MigrationJob("vpt-m")
		assert.False(t, ok)
		assert.Empty(t, d.ReleaseMigrations(), "nothing left to complete")
		where(t, d, peer, true)
		vm, err := d.Get(ctx, "vpt-m")
		require.NoError(t, err)
		assert.Equal(t, vmm.StateRunning, vm.State)
		require.NoError(t, d.AbortMigration(ctx, "vpt-m"), "no job: not an error")
		assert.ErrorIs(t, d.AbortMigration(ctx, "vpt-none"), virtplane.ErrNotFound)
		n := 0
		for _, c := range d.Calls() {
			if c.Method == "AbortMigration" {
				n++
			}
		}
		assert.Equal(t, 4, n, "aborts are recorded")
	})
	t.Run("release", func(t *testing.T) {
		d, peer := setup(t)
		done := migrating(t, d, ctx)
		assert.Equal(t, map[string]vmm.MigrationTarget{"vpt-m": {URI: "fake://peer"}}, d.ReleaseMigrations())
		require.NoError(t, <-done)
		where(t, d, peer, false)
	})
	t.Run("caller gone, job runs on", func(t *testing.T) {
		d, peer := setup(t)
		mctx, cancel := context.WithCancel(ctx)
		done := migrating(t, d, mctx)
		cancel()
		assert.ErrorIs(t, <-done, virtplane.ErrCanceled)
		target, ok := d.MigrationJob("vpt-m")
		require.True(t, ok, "the hypervisor's job outlives its caller")
		assert.Equal(t, "fake://peer", target.URI)
		where(t, d, peer, true)
		assert.Equal(t, map[string]vmm.MigrationTarget{"vpt-m": {URI: "fake://peer"}}, d.ReleaseMigrations())
		where(t, d, peer, false)
	})
	t.Run("a restarted daemon finds a job", func(t *testing.T) {
		d, peer := setup(t)
		require.ErrorIs(t, d.AddMigrationJob("vpt-none", vmm.MigrationTarget{URI: "fake://peer"}), virtplane.ErrNotFound)
		require.NoError(t, d.AddMigrationJob("vpt-m", vmm.MigrationTarget{URI: "fake://peer"}))
		require.ErrorIs(t, d.AddMigrationJob("vpt-m", vmm.MigrationTarget{URI: "fake://peer"}), virtplane.ErrConflict, "one job at a time")
		require.NoError(t, d.AbortMigration(ctx, "vpt-m"))
		where(t, d, peer, true)
	})
}

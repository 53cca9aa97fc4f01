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
					Prefix:     "vpt-",
					Spec:       func(t *testing.T, name string) vmm.Spec { return spec(name) },
					GuestAgent: true,
					Rescue:     vmm.RescueSpec{ISO: "/srv/rescue.iso"},
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

package simnode_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/daemon/store"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/port/porttest"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/storagetest"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/vmmtest"
)

func spec(name string) vmm.Spec {
	return vmm.Spec{Name: name, VCPUs: 1, MemoryMiB: 256,
		Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: "/fake/" + name + ".qcow2", Format: "qcow2"}}},
		NICs:  []vmm.NIC{{Bridge: "br0", MAC: "52:54:00:00:00:01"}},
	}
}

// The durable wrappers keep the fakes' behaviour: both pass the suites.
func TestVMMConformance(t *testing.T) {
	vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
		st := dbtest.SQLite(t)
		n, err := simnode.Open(t.Context(), st, "n1")
		require.NoError(t, err)
		return vmmtest.Harness{Driver: n, Prefix: "vpt-", Templates: true, Spec: func(t *testing.T, name string) vmm.Spec { return spec(name) },
			GuestAgent: true, Rescue: vmm.RescueSpec{ISO: "/srv/rescue.iso"},
			CopyTarget: func(*testing.T, int64) vmm.DiskSource {
				return vmm.DiskSource{Kind: "file", Path: "/srv/copy.qcow2", Format: "qcow2"}
			},
			ExtraDisk: func(*testing.T) vmm.DiskSource {
				return vmm.DiskSource{Kind: "file", Path: "/srv/extra.raw", Format: "raw"}
			},
			Migration: func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
				peer, err := simnode.Open(t.Context(), st, "n2")
				require.NoError(t, err)
				n.AddPeer("sim://n2", peer)
				return vmm.MigrationTarget{URI: "sim://n2"}, peer
			}}
	})
}

func TestStorageConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Pool {
		p, err := simnode.OpenStorage(t.Context(), dbtest.SQLite(t), "n1")
		require.NoError(t, err)
		return p
	})
}

// TestSurvivesReopen: what a node held is there again after the daemon
// reopens it from the store, as after a restart.
func TestSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	st := dbtest.SQLite(t)
	n, err := simnode.Open(ctx, st, "n1")
	require.NoError(t, err)
	_, err = n.Create(ctx, spec("vpt-a"))
	require.NoError(t, err)
	require.NoError(t, n.Start(ctx, "vpt-a"))
	_, err = n.Create(ctx, spec("vpt-b"))
	require.NoError(t, err)
	_, err = n.Create(ctx, spec("vpt-c"))
	require.NoError(t, err)
	require.NoError(t, n.Delete(ctx, "vpt-c"))

	p, err := simnode.OpenStorage(ctx, st, "n1")
	require.NoError(t, err)
	_, err = p.Create(ctx, storage.VolumeSpec{Name: "base", Size: 1 << 30})
	require.NoError(t, err)
	_, err = p.Clone(ctx, "base", "child", storage.CloneLinked)
	require.NoError(t, err)
	_, err = p.Resize(ctx, "child", 2<<30, storage.ResizeOptions{})
	require.NoError(t, err)

	n2, err := simnode.Open(ctx, st, "n1")
	require.NoError(t, err)
	vms, err := n2.List(ctx)
	require.NoError(t, err)
	require.Len(t, vms, 2)
	assert.Equal(t, vmm.StateRunning, vms[0].State)
	assert.Equal(t, vmm.StateStopped, vms[1].State)
	other, err := simnode.Open(ctx, st, "n2")
	require.NoError(t, err)
	none, err := other.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, none, "nodes do not share machines")

	p2, err := simnode.OpenStorage(ctx, st, "n1")
	require.NoError(t, err)
	child, err := p2.Volume(ctx, "child")
	require.NoError(t, err)
	assert.Equal(t, "base", child.Parent)
	assert.EqualValues(t, 2<<30, child.Capacity)
}

// TestMigrationMovesTheRecord: after a live migration the machine is on the
// target, and only there, when the nodes are opened again from the store.
func TestMigrationMovesTheRecord(t *testing.T) {
	ctx := t.Context()
	st := dbtest.SQLite(t)
	a, err := simnode.Open(ctx, st, "a")
	require.NoError(t, err)
	b, err := simnode.Open(ctx, st, "b")
	require.NoError(t, err)
	s := spec("vpt-m")
	s.CloudInit = &vmm.CloudInit{UserData: "#cloud-config\n", MetaData: "instance-id: m\n"}
	_, err = a.Create(ctx, s)
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx, "vpt-m"))
	require.ErrorIs(t, a.Migrate(ctx, "vpt-m", vmm.MigrationTarget{URI: "sim://b"}, nil), virtplane.ErrUnavailable, "no such peer")
	a.AddPeer("sim://b", b)
	moved := vmm.DiskSource{Kind: "file", Path: "/fake/sim-b/vpt-m-root", Format: "qcow2"}
	require.NoError(t, a.Migrate(ctx, "vpt-m", vmm.MigrationTarget{URI: "sim://b", Disks: map[string]vmm.DiskSource{"vda": moved}}, nil))

	a2, err := simnode.Open(ctx, st, "a")
	require.NoError(t, err)
	b2, err := simnode.Open(ctx, st, "b")
	require.NoError(t, err)
	_, err = a2.Get(ctx, "vpt-m")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	vm, err := b2.Get(ctx, "vpt-m")
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, vm.State)
	assert.Equal(t, moved, vm.Spec.Disks[0].Source)
	recs, err := st.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: "b"})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Contains(t, string(recs[0].Data), "instance-id: m", "the cloud-init data travelled with the record")
}

func TestPortsConformance(t *testing.T) {
	porttest.Run(t, func(t *testing.T) porttest.Harness {
		p, err := simnode.OpenPorts(t.Context(), dbtest.SQLite(t), "n1")
		require.NoError(t, err)
		return porttest.Harness{Ports: p}
	})
}

// TestPortsSurviveReopen: ports are recorded per node; a failed change
// (injected) records nothing.
func TestPortsSurviveReopen(t *testing.T) {
	ctx := t.Context()
	st := dbtest.SQLite(t)
	p, err := simnode.OpenPorts(ctx, st, "n1")
	require.NoError(t, err)
	a := netport.ForVM("vm-a", "vptbr0", []netip.Addr{netip.MustParseAddr("192.0.2.5")})
	b := netport.ForVM("vm-b", "vptbr0", nil)
	c := netport.ForVM("vm-c", "", nil) // modes are recorded too
	c.Mode = netport.ModeVXLAN
	c.VXLAN = &netport.VXLAN{VNI: 77, Local: netip.MustParseAddr("10.99.0.1"), Peers: []netip.Addr{netip.MustParseAddr("10.99.0.2")}}
	r := netport.ForVM("vm-r", "", []netip.Addr{netip.MustParseAddr("192.0.2.6")})
	r.Mode, r.GatewayV4 = netport.ModeRouted, netip.MustParseAddr("192.0.2.1")
	for _, s := range []netport.Spec{a, b, c, r} {
		require.NoError(t, p.Setup(ctx, s))
	}
	require.NoError(t, p.Teardown(ctx, b.Name))
	p.FailNext("Teardown", errors.New("injected"))
	require.Error(t, p.Teardown(ctx, c.Name))
	p.FailNext("Setup", errors.New("injected"))
	require.Error(t, p.Setup(ctx, netport.ForVM("vm-d", "vptbr0", nil)))

	again, err := simnode.OpenPorts(ctx, st, "n1")
	require.NoError(t, err)
	got, err := again.List(ctx)
	require.NoError(t, err)
	require.Len(t, got, 3)
	names := []string{got[0].Name, got[1].Name, got[2].Name}
	assert.ElementsMatch(t, []string{a.Name, c.Name, r.Name}, names)
	for _, s := range got {
		for _, want := range []netport.Spec{a, c, r} {
			if s.Name == want.Name {
				assert.True(t, want.Equal(s), "%v", s)
			}
		}
	}
	other, err := simnode.OpenPorts(ctx, st, "n2")
	require.NoError(t, err)
	none, err := other.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, none, "nodes do not share ports")
}

// Without a store a simulated node works the same and keeps nothing.
func TestInMemoryNodeKeepsNothing(t *testing.T) {
	ctx := t.Context()
	n, err := simnode.Open(ctx, nil, "n1")
	require.NoError(t, err)
	_, err = n.Create(ctx, spec("vpt-mem"))
	require.NoError(t, err)
	require.NoError(t, n.Start(ctx, "vpt-mem"))
	vm, err := n.Get(ctx, "vpt-mem")
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, vm.State)
	again, err := simnode.Open(ctx, nil, "n1")
	require.NoError(t, err)
	_, err = again.Get(ctx, "vpt-mem")
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "a new life starts empty")

	pool, err := simnode.OpenStorage(ctx, nil, "n1")
	require.NoError(t, err)
	_, err = pool.Create(ctx, storage.VolumeSpec{Name: "vpt-mem-root", Size: 1 << 30, Format: storage.FormatQcow2})
	require.NoError(t, err)
	ports, err := simnode.OpenPorts(ctx, nil, "n1")
	require.NoError(t, err)
	require.NoError(t, ports.Setup(ctx, netport.ForVM("vm1", "vptbr0", []netip.Addr{netip.MustParseAddr("192.0.2.5")})))
	got, err := ports.List(ctx)
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

// TestMigrationInProgressSurvivesRestart: a held migration whose caller
// went away (a killed daemon) is still running on the node opened again
// from the store; aborting it leaves the machine on the source, releasing
// it moves the machine and its record to the target.
func TestMigrationInProgressSurvivesRestart(t *testing.T) {
	for _, abort := range []bool{true, false} {
		t.Run(map[bool]string{true: "abort", false: "release"}[abort], func(t *testing.T) {
			ctx := t.Context()
			st := dbtest.SQLite(t)
			a, err := simnode.Open(ctx, st, "a")
			require.NoError(t, err)
			b, err := simnode.Open(ctx, st, "b")
			require.NoError(t, err)
			a.AddPeer("sim://b", b)
			_, err = a.Create(ctx, spec("vpt-m"))
			require.NoError(t, err)
			require.NoError(t, a.Start(ctx, "vpt-m"))
			a.HoldMigrations()
			mctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			moved := vmm.DiskSource{Kind: "file", Path: "/fake/sim-b/vpt-m-root", Format: "qcow2"}
			target := vmm.MigrationTarget{URI: "sim://b", Disks: map[string]vmm.DiskSource{"vda": moved}}
			go func() { done <- a.Migrate(mctx, "vpt-m", target, nil) }()
			require.Eventually(t, func() bool { _, ok := a.MigrationJob("vpt-m"); return ok }, 5*time.Second, time.Millisecond)
			cancel() // the daemon goes away; the hypervisor's job runs on
			require.ErrorIs(t, <-done, virtplane.ErrCanceled)

			a2, err := simnode.Open(ctx, st, "a")
			require.NoError(t, err)
			b2, err := simnode.Open(ctx, st, "b")
			require.NoError(t, err)
			got, ok := a2.MigrationJob("vpt-m")
			require.True(t, ok, "the job is still running after the restart")
			assert.Equal(t, target, got)
			if abort {
				require.NoError(t, a2.AbortMigration(ctx, "vpt-m"))
			} else {
				a2.AddPeer("sim://b", b2)
				names, err := a2.ReleaseMigrations(ctx)
				require.NoError(t, err)
				assert.Equal(t, []string{"vpt-m"}, names)
			}

			a3, err := simnode.Open(ctx, st, "a")
			require.NoError(t, err)
			b3, err := simnode.Open(ctx, st, "b")
			require.NoError(t, err)
			_, ok = a3.MigrationJob("vpt-m")
			assert.False(t, ok, "no job recorded any more")
			on, off := a3, b3
			if !abort {
				on, off = b3, a3
			}
			vm, err := on.Get(ctx, "vpt-m")
			require.NoError(t, err)
			assert.Equal(t, vmm.StateRunning, vm.State)
			_, err = off.Get(ctx, "vpt-m")
			assert.ErrorIs(t, err, virtplane.ErrNotFound)
			if !abort {
				assert.Equal(t, moved, vm.Spec.Disks[0].Source, "the disk arrived with its new source")
			}
		})
	}
}

package simnode_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/netport"
	"github.com/virtplane/virtplane/daemon/netport/netporttest"
	"github.com/virtplane/virtplane/daemon/simnode"
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
		n, err := simnode.Open(t.Context(), dbtest.SQLite(t), "n1")
		require.NoError(t, err)
		return vmmtest.Harness{Driver: n, Prefix: "vpt-", Spec: func(t *testing.T, name string) vmm.Spec { return spec(name) },
			GuestAgent: true, Rescue: vmm.RescueSpec{ISO: "/srv/rescue.iso"}}
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

func TestPortsConformance(t *testing.T) {
	netporttest.Run(t, func(t *testing.T) netporttest.Harness {
		p, err := simnode.OpenPorts(t.Context(), dbtest.SQLite(t), "n1")
		require.NoError(t, err)
		return netporttest.Harness{Ports: p}
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
	c := netport.ForVM("vm-c", "vptbr0", nil)
	for _, s := range []netport.Spec{a, b, c} {
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
	require.Len(t, got, 2)
	names := []string{got[0].Name, got[1].Name}
	assert.ElementsMatch(t, []string{a.Name, c.Name}, names)
	for _, s := range got {
		if s.Name == a.Name {
			assert.True(t, a.Equal(s), "%v", s)
		}
	}
	other, err := simnode.OpenPorts(ctx, st, "n2")
	require.NoError(t, err)
	none, err := other.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, none, "nodes do not share ports")
}

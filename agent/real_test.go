package agent_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
	"github.com/virtplane/virtplane/vmm/lxd"
	"github.com/virtplane/virtplane/vmm/vmmtest"
)

// TestVMMConformanceLibvirt runs the vmm suite through the agent against
// the real libvirtd (with the domain type the machine recorded): the guest
// boots the test kernel, the suite reads its console for boots and
// heartbeats, and the migration goes to a second libvirtd host served by
// an agent of its own.
func TestVMMConformanceLibvirt(t *testing.T) {
	vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
		f := newLibvirtFixture(t)
		return vmmtest.Harness{
			Driver:               serve(t, agent.Node{VMM: f.d}).client.VMM(),
			Prefix:               "vpt-ag-",
			Templates:            true,
			Spec:                 func(t *testing.T, name string) vmm.Spec { return f.spec(t, name) },
			ExtraDisk:            func(t *testing.T) vmm.DiskSource { return f.extraDisk(t) },
			CopyTarget:           func(t *testing.T, size int64) vmm.DiskSource { return f.copyTarget(t, size) },
			WaitBooted:           f.console.WaitBooted,
			Alive:                f.console.Alive,
			GuestIgnoresShutdown: true, // busybox init has no ACPI handling
			NoLiveNICLimits:      true, // this kernel has no sfq qdisc and no tc police
			NoIOWeight:           !testenv.HostHasIOWeight(),
			Rescue:               vmm.RescueSpec{Kernel: f.guest.kernel, Initrd: f.guest.initrd, Cmdline: "console=ttyS0 vpt.rescue=1"},
			Migration: func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
				h := testenv.StartLibvirtHost(t, "vpt-ag-peer", "10.238", 0)
				// The same state directory: the console log the watcher reads
				// is where the target writes it.
				peer, err := libvirt.New(libvirt.Config{Socket: h.Socket, StateDir: f.state}, libvirt.WithValues(h.Values()))
				require.NoError(t, err)
				t.Cleanup(func() { _ = peer.Close() })
				return vmm.MigrationTarget{URI: "qemu+unix:///system?socket=" + h.Socket, Address: h.Addr, AllowUnsafe: true},
					serve(t, agent.Node{VMM: peer}).client.VMM()
			},
			DiskSize:    64 << 20,
			BootTimeout: 2 * time.Minute,
		}
	})
}

// TestVMMConformanceLXD runs the vmm suite through the agent against the
// real LXD: a node whose driver lacks Migrator and Rescuer, which the
// client reports so that the suite skips them, and which makes its root
// file systems from images (vmm.ImageRooted).
func TestVMMConformanceLXD(t *testing.T) {
	vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
		env := testenv.RequireLXD(t)
		d, err := lxd.New(lxd.Config{Socket: env.Socket, Pool: env.Pool})
		require.NoError(t, err)
		remote := serve(t, agent.Node{VMM: d}).client.VMM()
		_, rooted := vmm.As[vmm.ImageRooted](remote)
		require.True(t, rooted, "LXD makes its containers' root from the image")
		_, migrates := vmm.As[vmm.Migrator](remote)
		require.False(t, migrates, "LXD here has no Migrator")
		return vmmtest.Harness{
			Driver: remote,
			Prefix: "vpt-ag-",
			Spec: func(t *testing.T, name string) vmm.Spec {
				return vmm.Spec{
					Name: name, Image: env.Image, VCPUs: 1, MemoryMiB: 128,
					NICs:      []vmm.NIC{{Tap: "vpt" + randHex(4), MAC: "52:54:00:" + randHex(1) + ":" + randHex(1) + ":" + randHex(1)}},
					CloudInit: &vmm.CloudInit{MetaData: "instance-id: " + name + "\n"},
				}
			},
			GuestIgnoresShutdown: true,
			NoMemorySnapshots:    true,
			NoLiveNICLimits:      true,
			NoIOWeight:           true,
			GuestAgent:           true,
			BootTimeout:          time.Minute,
			WaitBooted:           vmmtest.WaitGuestProcess(remote, "sleep"), // busybox init respawns it once its signals are set up
		}
	})
}

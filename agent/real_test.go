package agent_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
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
			Spec:                 func(t *testing.T, name string) vmm.Spec { return f.spec(t, name) },
			WaitBooted:           f.console.WaitBooted,
			Alive:                f.console.Alive,
			GuestIgnoresShutdown: true, // busybox init has no ACPI handling
			NoLiveNICLimits:      true, // this kernel has no sfq qdisc and no tc police
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

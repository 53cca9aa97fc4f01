package libvirt_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/vmmtest"
)

// TestConformance runs the vmm suite against the real libvirtd: the
// machine boots the test kernel under QEMU/TCG, and the suite reads its
// serial console for the boot marker and heartbeats.
func TestConformance(t *testing.T) {
	vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
		f := newFixture(t)
		return vmmtest.Harness{
			Driver:               f.d,
			Templates:            true,
			Prefix:               "vpt-",
			Spec:                 f.spec,
			WaitBooted:           f.console.WaitBooted,
			Alive:                f.console.Alive,
			GuestIgnoresShutdown: true, // busybox init has no ACPI handling
			GuestAgent:           false,
			NoLiveNICLimits:      true, // this kernel has no sfq qdisc and no tc police
			NoIOWeight:           !testenv.HostHasIOWeight(),
			Rescue:               vmm.RescueSpec{Kernel: f.guest.kernel, Initrd: f.guest.initrd, Cmdline: "console=ttyS0 vpt.rescue=1"},
			Migration:            migration(filepath.Join(f.dir, "state")),
			DiskSize:             64 << 20, // the spec's qcow2 disk
			ExtraDisk:            f.extraDisk,
			CopyTarget:           f.copyTarget,
			BootTimeout:          2 * time.Minute,
		}
	})
}

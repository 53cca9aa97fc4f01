package lxd_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/lxd"
	"github.com/virtplane/virtplane/vmm/vmmtest"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestConformance runs the vmm suite against the real LXD with the busybox
// image.
func TestConformance(t *testing.T) {
	vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
		env := testenv.RequireLXD(t)
		d, err := lxd.New(lxd.Config{Socket: env.Socket, Pool: env.Pool})
		require.NoError(t, err)
		return vmmtest.Harness{
			Driver: d,
			Prefix: "vpt-",
			Spec: func(t *testing.T, name string) vmm.Spec {
				return vmm.Spec{
					Name: name, Image: env.Image, VCPUs: 1, MemoryMiB: 128,
					NICs:      []vmm.NIC{{Tap: "vpt" + randHex(4), MAC: "52:54:00:" + randHex(1) + ":" + randHex(1) + ":" + randHex(1)}},
					CloudInit: &vmm.CloudInit{MetaData: "instance-id: " + name + "\n"},
				}
			},
			GuestIgnoresShutdown: true, // busybox init does not act on SIGPWR
			NoMemorySnapshots:    true, // no CRIU here
			NoLiveNICLimits:      true, // no tc police in this kernel
			NoIOWeight:           true, // no blkio/io.weight controller here
			GuestAgent:           true, // LXD exec reaches into every container
			BootTimeout:          time.Minute,
			WaitBooted:           vmmtest.WaitGuestProcess(d, "sleep"), // busybox init respawns it once its signals are set up
		}
	})
}

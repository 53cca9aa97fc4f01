package agent_test

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/agent"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/port/porttest"
	"github.com/virtplane/virtplane/storage"
	sfake "github.com/virtplane/virtplane/storage/fake"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/storage/storagetest"
	"github.com/virtplane/virtplane/vmm"
	vfake "github.com/virtplane/virtplane/vmm/fake"
	"github.com/virtplane/virtplane/vmm/vmmtest"
)

func fakeSpec(name string) vmm.Spec {
	return vmm.Spec{
		Name: name, VCPUs: 1, MemoryMiB: 128,
		Disks:   []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: "/var/lib/vm/" + name + ".qcow2", Format: "qcow2"}}},
		NICs:    []vmm.NIC{{Bridge: "br0", MAC: "52:54:00:AA:00:01"}},
		Console: vmm.ConsoleSpec{Type: "vnc", Password: "secret"},
	}
}

// TestVMMConformanceFake runs the vmm suite through the agent against the
// fake driver, in both of the fake's guest behaviours; the migration
// target is a second agent serving the fake's peer.
func TestVMMConformanceFake(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []vfake.Option
		ignore bool
	}{
		{"honours shutdown", nil, false},
		{"ignores shutdown", []vfake.Option{vfake.WithGuestsIgnoringShutdown()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
				d := vfake.New(tc.opts...)
				n := serve(t, agent.Node{VMM: d})
				return vmmtest.Harness{
					Driver:               n.client.VMM(),
					Prefix:               "vpt-",
					Templates:            true,
					Spec:                 func(t *testing.T, name string) vmm.Spec { return fakeSpec(name) },
					GuestAgent:           true,
					GuestIgnoresShutdown: tc.ignore,
					Rescue:               vmm.RescueSpec{ISO: "/srv/rescue.iso"},
					CopyTarget: func(*testing.T, int64) vmm.DiskSource {
						return vmm.DiskSource{Kind: "file", Path: "/srv/copy.qcow2", Format: "qcow2"}
					},
					ExtraDisk: func(*testing.T) vmm.DiskSource {
						return vmm.DiskSource{Kind: "file", Path: "/srv/extra.raw", Format: "raw"}
					},
					Migration: func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
						peer := vfake.New()
						d.AddPeer("fake://peer", peer)
						return vmm.MigrationTarget{URI: "fake://peer"}, serve(t, agent.Node{VMM: peer}).client.VMM()
					},
				}
			})
		})
	}
}

// vmmOnly is a driver with only the base interface, like a hypervisor
// without optional capabilities: the client must report none.
type vmmOnly struct{ vmm.Driver }

// TestVMMConformanceWithoutCapabilities: the suite skips what the node's
// driver lacks, although the client implements every interface.
func TestVMMConformanceWithoutCapabilities(t *testing.T) {
	vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
		return vmmtest.Harness{
			Driver:    serve(t, agent.Node{VMM: vmmOnly{vfake.New()}}).client.VMM(),
			Prefix:    "vpt-",
			Templates: true, // the fake behind applies them
			Spec:      func(t *testing.T, name string) vmm.Spec { return fakeSpec(name) },
		}
	})
}

func TestStorageConformanceFake(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Pool {
		n := serve(t, agent.Node{Pools: map[string]storage.Pool{"fake": sfake.New("fake", map[string]string{"tier": "ssd"})}})
		return n.client.Pool("fake")
	})
}

func needQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (make env-libvirt)")
	}
}

// TestStorageConformanceFile: a real file pool given to the node, and one
// the controller opens on the node by driver and path.
func TestStorageConformanceFile(t *testing.T) {
	needQemuImg(t)
	t.Run("given", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Pool {
			p, err := file.New(file.Config{Name: "local", Dir: t.TempDir()})
			require.NoError(t, err)
			return serve(t, agent.Node{Pools: map[string]storage.Pool{"local": p}, Exec: storage.LocalExecutor{}}).client.Pool("local")
		})
	})
	t.Run("opened", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Pool {
			c := serve(t, agent.Node{Exec: storage.LocalExecutor{}}).client
			p, err := c.OpenPool(t.Context(), agent.PoolSpec{Name: "cluster", Driver: "file", Path: t.TempDir() + "/pool", Tags: map[string]string{"tier": "hdd"}})
			require.NoError(t, err)
			return p
		})
	})
}

func TestPortsConformanceFake(t *testing.T) {
	porttest.Run(t, func(t *testing.T) porttest.Harness {
		return porttest.Harness{Ports: serve(t, agent.Node{Ports: netport.NewFake()}).client.Ports()}
	})
}

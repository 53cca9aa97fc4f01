package libvirt_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// migration prepares the second host as a migration target of machines
// whose files live under stateDir.
func migration(stateDir string) func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
	return func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
		h := testenv.StartLibvirtHost(t, "vpt-peer", "10.231", 0)
		peer, err := libvirt.New(libvirt.Config{Socket: h.Socket, StateDir: stateDir})
		require.NoError(t, err)
		t.Cleanup(func() { _ = peer.Close() })
		return vmm.MigrationTarget{
			URI:         "qemu+unix:///system?socket=" + h.Socket,
			Address:     h.Addr,
			AllowUnsafe: true, // the disks are local files both "hosts" see
		}, peer
	}
}

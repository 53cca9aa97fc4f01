package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
)

// TestSingleHost runs the example against the real libvirtd of env-libvirt
// with the test guest's bootable disk: the guest boots, prints its marker
// and the seed it read, and everything is gone afterwards.
func TestSingleHost(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	guest := testenv.RequireGuest(t)
	dir, err := os.MkdirTemp("/var/tmp", "vpt-single-host-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	v := lv.Values()
	var out strings.Builder
	err = run(t.Context(), &out, Options{Socket: lv.Socket, URI: lv.URI, DomainType: v.DomainType, CPUMode: v.CPUMode,
		Disk: guest.Disk, Dir: dir, Wait: "VPT-SEED end"})
	t.Log(out.String())
	require.NoError(t, err)
	o := out.String()
	assert.Contains(t, o, "address 198.51.100.2 (gateway 198.51.100.1) from pool public")
	assert.Contains(t, o, "disk root: linked clone of base")
	assert.Contains(t, o, "web1 booted")
	assert.Contains(t, o, "local-hostname: web1", "the guest read its cloud-init seed")
	assert.Contains(t, o, "198.51.100.2/28", "and its address")
	assert.Contains(t, o, "deleted: domain, port and bridge, disk and image, address")
	entries, err := os.ReadDir(dir + "/pool")
	require.NoError(t, err)
	assert.Empty(t, entries, "the pool holds nothing after the delete")
}

//go:build ceph

package smoke

import (
	"testing"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
)

// TestCephRBDImage creates and removes an RBD image with go-ceph on the
// single-node cluster.
func TestCephRBDImage(t *testing.T) {
	env := testenv.RequireCeph(t)
	conn, err := rados.NewConnWithUser(env.User)
	require.NoError(t, err)
	require.NoError(t, conn.ReadConfigFile(env.Conf))
	require.NoError(t, conn.Connect())
	defer conn.Shutdown()
	ioctx, err := conn.OpenIOContext(env.Pool)
	require.NoError(t, err)
	defer ioctx.Destroy()

	name := uniqueName("rbd")
	require.NoError(t, rbd.CreateImage(ioctx, name, 64<<20, rbd.NewRbdImageOptions()))
	img, err := rbd.OpenImage(ioctx, name, rbd.NoSnapshot)
	require.NoError(t, err)
	size, err := img.GetSize()
	require.NoError(t, err)
	assert.Equal(t, uint64(64<<20), size)
	require.NoError(t, img.Close())

	names, err := rbd.GetImageNames(ioctx)
	require.NoError(t, err)
	assert.Contains(t, names, name)
	require.NoError(t, rbd.RemoveImage(ioctx, name))
	names, err = rbd.GetImageNames(ioctx)
	require.NoError(t, err)
	assert.NotContains(t, names, name)
}

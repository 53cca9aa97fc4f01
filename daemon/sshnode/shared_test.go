package sshnode_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/sshnode"
	"github.com/virtplane/virtplane/storage"
)

// elsewhere runs commands on "another machine": its file system is the
// directory root of this one.
type elsewhere struct{ root string }

func (e elsewhere) Run(ctx context.Context, cmd storage.Command) ([]byte, error) {
	for i, a := range cmd.Args {
		if strings.HasPrefix(a, "/") {
			cmd.Args[i] = e.root + a
		}
	}
	out, err := storage.LocalExecutor{}.Run(ctx, cmd)
	return []byte(strings.ReplaceAll(string(out), e.root, "")), err
}

func TestSharedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	// Over SSH to this host: the same directory.
	ex := connect(t).Executor()
	require.NoError(t, sshnode.SharedDir(t.Context(), ex, "n1", dir))
	assert.DirExists(t, dir)
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left, "the probe is removed")

	// A machine whose directory the daemon does not see.
	root := t.TempDir()
	err = sshnode.SharedDir(t.Context(), elsewhere{root}, "n2", filepath.Join(filepath.Dir(dir), "other"))
	require.ErrorIs(t, err, virtplane.ErrNotImplemented)
	assert.Contains(t, err.Error(), "node n2")

	for _, bad := range []string{"relative", "/a/../b", ""} {
		assert.ErrorIs(t, sshnode.SharedDir(t.Context(), ex, "n1", bad), virtplane.ErrInvalidArgument)
	}
}

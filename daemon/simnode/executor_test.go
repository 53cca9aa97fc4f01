package simnode_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/storage"
)

// TestExecutorAnswersLikeQemuImg: the simulated `qemu-img info` reads the
// same format, virtual size and backing file as the real one.
func TestExecutorAnswersLikeQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		testenv.Missing(t, "qemu-img", "env-libvirt", err)
	}
	ctx := t.Context()
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	require.NoError(t, os.WriteFile(raw, make([]byte, 3<<20), 0o644))
	base := filepath.Join(dir, "base.qcow2")
	child := filepath.Join(dir, "child.qcow2")
	for _, args := range [][]string{
		{"create", "-q", "-f", "qcow2", base, "1G"},
		{"create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", child, "2G"},
	} {
		out, err := exec.Command("qemu-img", args...).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	for _, p := range []string{raw, base, child} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			want, err := storage.QemuImageInfo(ctx, storage.LocalExecutor{}, p)
			require.NoError(t, err)
			sim, err := storage.QemuImageInfo(ctx, simnode.Executor{}, p)
			require.NoError(t, err)
			assert.Equal(t, want.Format, sim.Format)
			assert.Equal(t, want.VirtualSize, sim.VirtualSize)
			assert.Equal(t, want.BackingFilename, sim.BackingFilename)
		})
	}
}

func TestExecutorErrors(t *testing.T) {
	ctx := t.Context()
	_, err := storage.QemuImageInfo(ctx, simnode.Executor{}, "/nonexistent/disk.qcow2")
	var ee *storage.ExitError
	assert.ErrorAs(t, err, &ee, "a missing file fails like qemu-img")

	cmd, err := storage.ConvertCommand(storage.Attachment{Kind: "file", Path: "/nonexistent/a.raw", Format: "raw"},
		storage.Attachment{Kind: "file", Path: "/fake/pool/v", Format: "qcow2"})
	require.NoError(t, err)
	_, err = simnode.Executor{}.Run(ctx, cmd)
	assert.ErrorAs(t, err, &ee, "an unreadable source")

	cmd, err = storage.ConvertCommand(storage.Attachment{Kind: "file", Path: "/fake/a/v", Format: "qcow2"},
		storage.Attachment{Kind: "file", Path: "/fake/b/v", Format: "qcow2"})
	require.NoError(t, err)
	_, err = simnode.Executor{}.Run(ctx, cmd)
	assert.NoError(t, err, "simulated volumes copy without data")

	_, err = simnode.Executor{}.Run(ctx, storage.Command{Name: "rbd", Args: []string{"ls"}})
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
}

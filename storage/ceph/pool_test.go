//go:build ceph

package ceph_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ceph/go-ceph/rbd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/ceph"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/storage/storagetest"
)

func newPool(t testing.TB) *ceph.Pool {
	t.Helper()
	env := testenv.RequireCeph(t)
	p, err := ceph.New(t.Context(), ceph.Config{Name: "ceph", Pool: env.Pool, Conf: env.Conf, User: env.User,
		Monitors: strings.Split(env.Monitors, ","), Tags: map[string]string{"tier": "ceph"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestConformance(t *testing.T) {
	p := newPool(t)
	storagetest.Run(t, func(t *testing.T) storage.Pool { return p })
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := ceph.New(t.Context(), ceph.Config{Name: "c", Pool: "../x"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	env := testenv.RequireCeph(t)
	_, err = ceph.New(t.Context(), ceph.Config{Name: "c", Pool: "vpt-no-such-pool", Conf: env.Conf})
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

// An injected failure at each step of a linked clone leaves neither the
// clone nor the protected snapshot behind, and the parent stays deletable.
func TestLinkedCloneFailureLeavesNothing(t *testing.T) {
	ctx := t.Context()
	p := newPool(t)
	base := storagetest.RandomName() + "-base"
	_, err := p.Create(ctx, storage.VolumeSpec{Name: base, Size: 16 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { deleteOrReport(t, p, base) })
	for _, step := range []string{"protect", "clone", "stat"} {
		t.Run(step, func(t *testing.T) {
			injected := errors.New("injected at " + step)
			ceph.SetFault(p, func(s string) error {
				if s == step {
					return injected
				}
				return nil
			})
			defer ceph.SetFault(p, nil)
			clone := base + "-c"
			_, err := p.Clone(ctx, base, clone, storage.CloneLinked)
			require.ErrorIs(t, err, injected)
			_, err = p.Volume(ctx, clone)
			assert.ErrorIs(t, err, virtplane.ErrNotFound, "no clone left")
			img, err := rbd.OpenImageReadOnly(p.IOContext(), base, rbd.NoSnapshot)
			require.NoError(t, err)
			snaps, err := img.GetSnapshotNames()
			require.NoError(t, img.Close())
			require.NoError(t, err)
			assert.Empty(t, snaps, "no clone snapshot left")
		})
	}
}

func writePattern(t *testing.T, path string, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data[:size/2]) // second half stays zero: sparse handling is exercised too
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return data
}

func rawOf(t *testing.T, v storage.Volume) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.raw")
	b, err := exec.CommandContext(t.Context(), "qemu-img", "convert", "-O", "raw", v.Attachment.Path, out).CombinedOutput()
	require.NoError(t, err, string(b))
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	return data
}

// A volume travels file → RBD → file with qemu-img convert and arrives byte for byte.
func TestCopyFileToRBDAndBack(t *testing.T) {
	ctx := t.Context()
	rp := newPool(t)
	fp, err := file.New(file.Config{Name: "local", Dir: t.TempDir()})
	require.NoError(t, err)
	ex := storage.LocalExecutor{}

	src, err := fp.Create(ctx, storage.VolumeSpec{Name: "src", Size: 8 << 20, Format: storage.FormatQcow2})
	require.NoError(t, err)
	raw := filepath.Join(t.TempDir(), "pattern.raw")
	want := writePattern(t, raw, 8<<20)
	b, err := exec.CommandContext(ctx, "qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", raw, src.Attachment.Path).CombinedOutput()
	require.NoError(t, err, string(b))

	name := storagetest.RandomName() + "-copy"
	t.Cleanup(func() { deleteOrReport(t, rp, name) })
	rv, err := storage.CopyVolume(ctx, ex, fp, "src", rp, name)
	require.NoError(t, err)
	assert.Equal(t, int64(8<<20), rv.Capacity)

	got := make([]byte, 8<<20)
	img, err := rbd.OpenImageReadOnly(rp.IOContext(), name, rbd.NoSnapshot)
	require.NoError(t, err)
	_, err = img.ReadAt(got, 0)
	require.NoError(t, img.Close())
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "RBD image holds the file's bytes")

	back, err := storage.MoveVolume(ctx, ex, rp, name, fp, "back")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, rawOf(t, back)), "the copy back is byte for byte the original")
	_, err = rp.Volume(ctx, name)
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "move removed the RBD image")
}

// A copy into RBD that fails in qemu-img leaves no image behind.
func TestCopyFailureLeavesNoImage(t *testing.T) {
	ctx := t.Context()
	rp := newPool(t)
	fp, err := file.New(file.Config{Name: "local", Dir: t.TempDir()})
	require.NoError(t, err)
	_, err = fp.Create(ctx, storage.VolumeSpec{Name: "src", Size: 4 << 20})
	require.NoError(t, err)
	name := storagetest.RandomName() + "-broken"
	// An executor that kills the convert: qemu-img is started with a bad
	// option, as a transfer cut halfway would fail.
	ex := failConvert{storage.LocalExecutor{}}
	_, err = storage.CopyVolume(ctx, ex, fp, "src", rp, name)
	require.Error(t, err)
	_, err = rp.Volume(ctx, name)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

// An OS image file is imported into RBD (qemu-img convert to an rbd target)
// and VMs get linked clones of it.
func TestImportIntoRBD(t *testing.T) {
	ctx := t.Context()
	p := newPool(t)
	dir := t.TempDir()
	raw := filepath.Join(dir, "image.raw")
	want := writePattern(t, raw, 4<<20)
	qcow := filepath.Join(dir, "image.qcow2")
	out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput()
	require.NoError(t, err, string(out))

	key := storagetest.RandomName() + "-image"
	clone := key + "-vm1"
	t.Cleanup(func() {
		deleteOrReport(t, p, clone)
		deleteOrReport(t, p, key)
	})
	im := storage.Importer{Exec: storage.LocalExecutor{}}
	base, imported, err := im.Base(ctx, p, storage.Image{Key: key, Path: qcow}, nil)
	require.NoError(t, err)
	assert.True(t, imported)
	_, imported, err = im.Base(ctx, p, storage.Image{Key: key, Path: qcow}, nil)
	require.NoError(t, err)
	assert.False(t, imported, "the second VM reuses the base")

	_, err = p.Clone(ctx, base.Name, clone, storage.CloneLinked)
	require.NoError(t, err)
	img, err := rbd.OpenImageReadOnly(p.IOContext(), clone, rbd.NoSnapshot)
	require.NoError(t, err)
	got := make([]byte, len(want))
	_, err = img.ReadAt(got, 0)
	require.NoError(t, img.Close())
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "the clone reads the image's bytes through its parent")
}

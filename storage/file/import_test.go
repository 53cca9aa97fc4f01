package file_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/storage"
)

// An OS image streamed into the node's cache is imported once as a base
// volume; the second VM's disk is a linked clone of the same base, without
// a second fetch.
func TestImportStreamOnceThenLinkedClones(t *testing.T) {
	needQemuImg(t)
	ctx := t.Context()
	p := newPool(t, nil)

	want := make([]byte, 4<<20)
	_, _ = rand.Read(want[:1<<20])
	raw := filepath.Join(t.TempDir(), "image.raw")
	require.NoError(t, os.WriteFile(raw, want, 0o600))
	qcow := filepath.Join(t.TempDir(), "image.qcow2")
	out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput()
	require.NoError(t, err, string(out))
	imgBytes, err := os.ReadFile(qcow)
	require.NoError(t, err)

	cache, err := storage.NewImageCache(t.TempDir())
	require.NoError(t, err)
	fetches := 0
	img := storage.Image{Key: "debian-12", Open: func(context.Context) (io.ReadCloser, int64, error) {
		fetches++
		return io.NopCloser(bytes.NewReader(imgBytes)), int64(len(imgBytes)), nil
	}}
	var progress []int64
	im := storage.Importer{Exec: storage.LocalExecutor{}, Cache: cache}
	for i, vm := range []string{"vm1-root", "vm2-root"} {
		base, imported, err := im.Base(ctx, p, img, func(done, total int64) { progress = append(progress, done) })
		require.NoError(t, err)
		assert.Equal(t, i == 0, imported, "imported only the first time")
		assert.Equal(t, int64(4<<20), base.Capacity)
		clone, err := p.Clone(ctx, base.Name, vm, storage.CloneLinked)
		require.NoError(t, err)
		assert.Equal(t, want, readAll(t, clone), "%s sees the image's bytes", vm)
	}
	assert.Equal(t, 1, fetches, "the image was fetched once")
	require.NotEmpty(t, progress)
	assert.Equal(t, int64(4<<20), progress[len(progress)-1], "progress ends at the image size")

	// Another pool on the same node imports its own base from the cached
	// file: the cache is per node, the base per pool; still one fetch.
	p2 := newPool(t, nil)
	_, imported, err := im.Base(ctx, p2, img, nil)
	require.NoError(t, err)
	assert.True(t, imported)
	assert.Equal(t, 1, fetches)
}

package file_test

import (
	"github.com/virtplane/virtplane/internal/testenv"

	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/fake"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/storage/storagetest"
)

// needQemuImg: qemu-img is a prerequisite of the file driver; like any
// real component, its absence fails under CI.
func needQemuImg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		testenv.Missing(t, "qemu-img", "env-libvirt", err)
	}
}

func newPool(t testing.TB, ex storage.Executor) *file.Pool {
	t.Helper()
	p, err := file.New(file.Config{Name: "local", Dir: t.TempDir(), Tags: map[string]string{"tier": "ssd"}, Exec: ex})
	require.NoError(t, err)
	return p
}

func TestConformance(t *testing.T) {
	needQemuImg(t)
	storagetest.Run(t, func(t *testing.T) storage.Pool { return newPool(t, nil) })
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []file.Config{
		{Name: "p", Dir: "relative"},
		{Name: "p", Dir: "/nonexistent/vpt"},
		{Name: "-p", Dir: "/tmp"},
		{Name: "p", Dir: "/tmp/../etc"},
	} {
		_, err := file.New(cfg)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "%+v", cfg)
	}
}

func qemuIO(t *testing.T, path, cmd string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "qemu-io", "-c", cmd, path).CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

func readAll(t *testing.T, v storage.Volume) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.raw")
	b, err := exec.CommandContext(t.Context(), "qemu-img", "convert", "-O", "raw", v.Attachment.Path, out).CombinedOutput()
	require.NoError(t, err, string(b))
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	return data
}

// Data written to the parent is seen through a linked clone; writes to the
// clone stay in the clone; a snapshot revert brings old data back.
func TestLinkedCloneAndSnapshotData(t *testing.T) {
	needQemuImg(t)
	ctx := t.Context()
	p := newPool(t, nil)
	base, err := p.Create(ctx, storage.VolumeSpec{Name: "base", Size: 8 << 20})
	require.NoError(t, err)
	qemuIO(t, base.Attachment.Path, "write -P 0xab 0 1M")

	clone, err := p.Clone(ctx, "base", "vm1", storage.CloneLinked)
	require.NoError(t, err)
	assert.Less(t, clone.Allocated, int64(1<<20), "a linked clone copies no data")
	qemuIO(t, clone.Attachment.Path, "write -P 0xcd 1M 1M")
	data := readAll(t, clone)
	assert.Equal(t, bytes.Repeat([]byte{0xab}, 1<<20), data[:1<<20])
	assert.Equal(t, bytes.Repeat([]byte{0xcd}, 1<<20), data[1<<20:2<<20])
	assert.Equal(t, make([]byte, 1<<20), readAll(t, base)[1<<20:2<<20], "the parent is untouched")

	full, err := p.Clone(ctx, "vm1", "vm1-full", storage.CloneFull)
	require.NoError(t, err)
	assert.Empty(t, full.Parent)
	assert.Equal(t, data, readAll(t, full), "a full clone flattens the chain")

	_, err = p.CreateSnapshot(ctx, "vm1", "before")
	require.NoError(t, err)
	qemuIO(t, clone.Attachment.Path, "write -P 0xee 0 2M")
	require.NoError(t, p.RevertSnapshot(ctx, "vm1", "before"))
	assert.Equal(t, data, readAll(t, clone), "revert restored the data")

	_, err = p.CreateSnapshot(ctx, "base", "s")
	require.NoError(t, err)
	assert.ErrorIs(t, p.RevertSnapshot(ctx, "base", "s"), virtplane.ErrConflict, "reverting a parent under clones")

	raw, err := p.Create(ctx, storage.VolumeSpec{Name: "raw", Size: 1 << 20, Format: storage.FormatRaw})
	require.NoError(t, err)
	_, err = p.CreateSnapshot(ctx, raw.Name, "s")
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "raw has no snapshots")
	rawClone, err := p.Clone(ctx, "raw", "raw-linked", storage.CloneLinked)
	require.NoError(t, err)
	assert.Equal(t, storage.FormatQcow2, rawClone.Format, "a linked clone of raw is a qcow2 overlay")
	assert.Equal(t, "raw", rawClone.Parent)
}

// An injected failure of the qemu-img step leaves no file behind, for every
// operation that creates one.
func TestFailureLeavesNothing(t *testing.T) {
	needQemuImg(t)
	ctx := t.Context()
	ex := &fake.Executor{Next: storage.LocalExecutor{}}
	dir := t.TempDir()
	p, err := file.New(file.Config{Name: "local", Dir: dir, Exec: ex})
	require.NoError(t, err)
	_, err = p.Create(ctx, storage.VolumeSpec{Name: "base", Size: 1 << 20})
	require.NoError(t, err)
	injected := errors.New("injected")
	steps := []struct {
		prefix string
		run    func() error
	}{
		{"qemu-img create", func() error {
			_, err := p.Create(ctx, storage.VolumeSpec{Name: "new", Size: 1 << 20})
			return err
		}},
		{"qemu-img create", func() error { _, err := p.Clone(ctx, "base", "new", storage.CloneLinked); return err }},
		{"qemu-img convert", func() error { _, err := p.Clone(ctx, "base", "new", storage.CloneFull); return err }},
	}
	for _, s := range steps {
		ex.FailOnce(s.prefix, injected)
		require.ErrorIs(t, s.run(), injected)
		vols, err := p.List(ctx)
		require.NoError(t, err)
		require.Len(t, vols, 1, "only base is left after a failed %s", s.prefix)
		_, err = p.Volume(ctx, "new")
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Len(t, entries, 1, "no temporary file is left")
	}
}

func FuzzQcow2Header(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "x.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", path, "1M").CombinedOutput(); err == nil {
		b, _ := os.ReadFile(path)
		f.Add(b[:512])
	} else {
		f.Logf("qemu-img: %v %s", err, out)
	}
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x48\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00base"))
	f.Add([]byte("not qcow2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := file.ParseQcow2Header(bytes.NewReader(b))
		if err == nil && (h.Size < 0 || len(h.BackingFile) > 1023) {
			t.Fatalf("accepted %+v", h)
		}
	})
}

package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/fake"
	"github.com/virtplane/virtplane/storage/storagetest"
)

func TestValidateName(t *testing.T) {
	for _, good := range []string{"a", "vm-1-root", "debian_12.qcow2", "A+B", "0"} {
		assert.NoError(t, storage.ValidateName("name", good), good)
	}
	for _, bad := range storagetest.BadNames {
		err := storage.ValidateName("volume name", bad)
		require.ErrorIs(t, err, virtplane.ErrInvalidArgument, "%q", bad)
		assert.Contains(t, err.Error(), "volume name")
	}
}

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/var/lib/x.qcow2", true},
		{"/dev/vg/lv", true},
		{"relative", false},
		{"/a/../etc/passwd", false},
		{"/a//b", false},
		{"/a/b/", false},
		{"/a:b", false},
		{"/a,b", false},
		{"", false},
	}
	for _, tt := range tests {
		err := storage.ValidatePath("path", tt.path)
		if tt.ok {
			assert.NoError(t, err, tt.path)
		} else {
			assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, tt.path)
		}
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range append(storagetest.BadNames, "ok", "vm-1") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if storage.ValidateName("n", s) != nil {
			return
		}
		// Whatever passes is safe as a file name and as an argument.
		if strings.HasPrefix(s, "-") || strings.HasPrefix(s, ".") || strings.ContainsAny(s, "/\x00 :,") {
			t.Fatalf("accepted %q", s)
		}
	})
}

func TestQemuSpec(t *testing.T) {
	tests := []struct {
		name string
		a    storage.Attachment
		spec string
		err  bool
	}{
		{"file", storage.Attachment{Kind: "file", Path: "/p/a.qcow2", Format: "qcow2"}, "/p/a.qcow2", false},
		{"block", storage.Attachment{Kind: "block", Path: "/dev/vg/a", Format: "raw"}, "/dev/vg/a", false},
		{"iscsi", storage.Attachment{Kind: "iscsi", URL: "iscsi://127.0.0.1:3260/iqn.2026-01.io.x:t/1", Format: "raw"}, "iscsi://127.0.0.1:3260/iqn.2026-01.io.x:t/1", false},
		{"rbd", storage.Attachment{Kind: "rbd", Pool: "rbd", Image: "a", Monitors: []string{"127.0.0.1:3300"}, Format: "raw"},
			`json:{"driver":"raw","file":{"driver":"rbd","image":"a","pool":"rbd","server":[{"host":"127.0.0.1","port":"3300"}]}}`, false},
		{"rbd user", storage.Attachment{Kind: "rbd", Pool: "rbd", Image: "a", User: "libvirt", Format: "raw"},
			`json:{"driver":"raw","file":{"driver":"rbd","image":"a","pool":"rbd","user":"libvirt"}}`, false},
		{"rbd injection", storage.Attachment{Kind: "rbd", Pool: "rbd", Image: `a","driver":"file`, Format: "raw"}, "", true},
		{"file traversal", storage.Attachment{Kind: "file", Path: "/p/../etc/shadow", Format: "raw"}, "", true},
		{"file protocol", storage.Attachment{Kind: "file", Path: "/p/nbd:x", Format: "raw"}, "", true},
		{"iscsi bad", storage.Attachment{Kind: "iscsi", URL: "iscsi://h/iqn.x/1?x=y", Format: "raw"}, "", true},
		{"bad format", storage.Attachment{Kind: "file", Path: "/p/a", Format: "vmdk"}, "", true},
		{"bad kind", storage.Attachment{Kind: "nbd", Path: "/p/a", Format: "raw"}, "", true},
		{"bad monitor", storage.Attachment{Kind: "rbd", Pool: "rbd", Image: "a", Monitors: []string{"nohostport"}, Format: "raw"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, _, err := storage.QemuSpec(tt.a)
			if tt.err {
				assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.spec, spec)
		})
	}
}

func FuzzParseImageInfo(f *testing.F) {
	f.Add([]byte(`{"virtual-size": 1073741824, "filename": "/a", "format": "qcow2", "actual-size": 200704, "backing-filename": "/b"}`))
	f.Add([]byte(`{"virtual-size": -1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := storage.ParseImageInfo(b)
		if err == nil && (info.VirtualSize < 0 || info.ActualSize < 0) {
			t.Fatalf("negative size accepted: %+v", info)
		}
	})
}

func FuzzValidateISCSIURL(f *testing.F) {
	f.Add("iscsi://127.0.0.1:3260/iqn.2026-01.io.virtplane:test/1")
	f.Add("iscsi://h/iqn.x/99999")
	f.Fuzz(func(t *testing.T, s string) {
		if storage.ValidateISCSIURL(s) == nil && strings.ContainsAny(s, " \n\x00") {
			t.Fatalf("accepted %q", s)
		}
	})
}

// A copy whose qemu-img convert fails leaves no volume at the destination.
func TestCopyVolumeFailureLeavesNothing(t *testing.T) {
	ctx := t.Context()
	src, dst := fake.New("src", nil), fake.New("dst", nil)
	_, err := src.Create(ctx, storage.VolumeSpec{Name: "a", Size: 1 << 20})
	require.NoError(t, err)
	ex := &fake.Executor{}
	ex.FailOnce("qemu-img convert", errors.New("injected: connection lost"))
	_, err = storage.CopyVolume(ctx, ex, src, "a", dst, "b")
	require.ErrorContains(t, err, "injected")
	vols, err := dst.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, vols)
	assert.Equal(t, "qemu-img convert -n -f qcow2 -O qcow2 /fake/src/a /fake/dst/b\n", ex.Transcript())

	// Without the fault the copy is there, and a move removes the source.
	v, err := storage.MoveVolume(ctx, ex, src, "a", dst, "b")
	require.NoError(t, err)
	assert.Equal(t, "b", v.Name)
	_, err = src.Volume(ctx, "a")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)

	// A move whose source cannot be deleted removes the copy again.
	_, err = src.Create(ctx, storage.VolumeSpec{Name: "c", Size: 1 << 20})
	require.NoError(t, err)
	src.Fail("Delete", virtplane.ErrConflict)
	_, err = storage.MoveVolume(ctx, ex, src, "c", dst, "d")
	require.ErrorIs(t, err, virtplane.ErrConflict)
	_, err = dst.Volume(ctx, "d")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	_, err = src.Volume(ctx, "c")
	assert.NoError(t, err)
}

func TestImportUsesCacheAndRevertsOnFailure(t *testing.T) {
	ctx := t.Context()
	cache, err := storage.NewImageCache(t.TempDir())
	require.NoError(t, err)
	ex := &fake.Executor{}
	ex.On("qemu-img info", `{"virtual-size": 1048576, "format": "raw", "actual-size": 4096}`, nil)
	opens := 0
	data := bytes.Repeat([]byte{0xab}, 1<<20)
	img := storage.Image{Key: "debian-12", Open: func(context.Context) (io.ReadCloser, int64, error) {
		opens++
		return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
	}}
	pool := fake.New("p", nil)
	var last [2]int64
	im := storage.Importer{Exec: ex, Cache: cache}
	v, err := im.Import(ctx, pool, "base-1", img, func(done, total int64) { last = [2]int64{done, total} })
	require.NoError(t, err)
	assert.Equal(t, int64(1<<20), v.Capacity)
	assert.Equal(t, [2]int64{1 << 20, 1 << 20}, last, "progress reached the end")

	ex.FailOnce("qemu-img convert", errors.New("injected"))
	_, err = im.Import(ctx, pool, "base-2", img, nil)
	require.Error(t, err)
	_, err = pool.Volume(ctx, "base-2")
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "the failed import removed its volume")

	_, err = im.Import(ctx, pool, "base-3", img, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, opens, "the image was fetched once")

	// A fetch that fails halfway leaves nothing in the cache.
	broken := storage.Image{Key: "broken", Open: func(context.Context) (io.ReadCloser, int64, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(data[:100]), errReader{})), 0, nil
	}}
	_, _, err = cache.Fetch(ctx, broken, nil)
	require.Error(t, err)
	_, hit, err := cache.Fetch(ctx, storage.Image{Key: "broken", Open: img.Open}, nil)
	require.NoError(t, err)
	assert.False(t, hit)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("injected: stream cut") }

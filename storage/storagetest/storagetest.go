package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// Size is the volume size the suite uses: small enough for a memstore OSD,
// a multiple of LVM's 4 MiB extent.
const Size = 64 << 20

// Run runs the conformance suite against the pools newPool returns. newPool
// may hand out the same shared pool every time: the suite names every volume
// it makes "vpt-<random>-..." and deletes it when the test ends, and ignores
// volumes it did not make. Capabilities the pool does not implement
// (storage.Resizer, Cloner, Snapshotter, Activator) are skipped; everything
// a pool claims is tested.
func Run(t *testing.T, newPool func(t *testing.T) storage.Pool) {
	t.Run("Info", func(t *testing.T) { testInfo(t, newPool(t)) })
	t.Run("CreateAndStat", func(t *testing.T) { testCreate(t, newPool(t)) })
	t.Run("CreateRejectsBadInput", func(t *testing.T) { testBadInput(t, newPool(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newPool(t)) })
	t.Run("ListAndDelete", func(t *testing.T) { testList(t, newPool(t)) })
	t.Run("Resize", func(t *testing.T) {
		p := newPool(t)
		r, ok := storage.As[storage.Resizer](p)
		if !ok {
			t.Skip("pool does not implement storage.Resizer")
		}
		testResize(t, p, r)
	})
	t.Run("Clone", func(t *testing.T) {
		p := newPool(t)
		c, ok := storage.As[storage.Cloner](p)
		if !ok {
			t.Skip("pool does not implement storage.Cloner")
		}
		testClone(t, p, c)
	})
	t.Run("Snapshots", func(t *testing.T) {
		p := newPool(t)
		s, ok := storage.As[storage.Snapshotter](p)
		if !ok {
			t.Skip("pool does not implement storage.Snapshotter")
		}
		testSnapshots(t, p, s)
	})
	t.Run("Activate", func(t *testing.T) {
		p := newPool(t)
		a, ok := storage.As[storage.Activator](p)
		if !ok {
			t.Skip("pool does not implement storage.Activator")
		}
		testActivate(t, p, a)
	})
}

// RandomName returns "vpt-" and 8 random hex digits, the prefix of every
// volume a test makes in a shared pool (make env-clean removes leftovers).
func RandomName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "vpt-" + hex.EncodeToString(b)
}

// names hands out volume names and deletes them when the test ends; t.Cleanup
// runs last-in first-out, so linked clones go before their parents.
type names struct {
	t      *testing.T
	p      storage.Pool
	prefix string
}

func newNames(t *testing.T, p storage.Pool) *names {
	return &names{t: t, p: p, prefix: RandomName()}
}

func (n *names) get(suffix string) string {
	name := n.prefix + "-" + suffix
	n.t.Cleanup(func() {
		err := n.p.Delete(context.WithoutCancel(n.t.Context()), name)
		if err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			n.t.Errorf("cleanup: delete %q: %v", name, err)
		}
	})
	return name
}

func mine(vols []storage.Volume, prefix string) []string {
	var out []string
	for _, v := range vols {
		if strings.HasPrefix(v.Name, prefix) {
			out = append(out, v.Name)
		}
	}
	return out
}

func testInfo(t *testing.T, p storage.Pool) {
	info, err := p.Info(t.Context())
	require.NoError(t, err)
	assert.NotEmpty(t, info.Name, "pool name")
	assert.NotEmpty(t, info.Driver, "driver")
	require.NotEmpty(t, info.Formats, "formats")
	for _, f := range info.Formats {
		assert.Contains(t, []storage.Format{storage.FormatQcow2, storage.FormatRaw}, f)
	}
	assert.GreaterOrEqual(t, info.Capacity, int64(0))
	assert.GreaterOrEqual(t, info.Used, int64(0))
	assert.GreaterOrEqual(t, info.Allocated, int64(0))
}

// checkAttachment holds an attachment to what vmm needs for its kind.
func checkAttachment(t *testing.T, v storage.Volume) {
	t.Helper()
	a := v.Attachment
	assert.Equal(t, string(v.Format), a.Format, "attachment format")
	switch a.Kind {
	case storage.KindFile, storage.KindBlock:
		assert.NoError(t, storage.ValidatePath("attachment path", a.Path))
	case storage.KindRBD:
		assert.NotEmpty(t, a.Pool, "rbd pool")
		assert.NotEmpty(t, a.Image, "rbd image")
		assert.NotEmpty(t, a.Monitors, "rbd monitors")
	case storage.KindISCSI:
		assert.NoError(t, storage.ValidateISCSIURL(a.URL))
	default:
		t.Errorf("attachment kind %q", a.Kind)
	}
	_, _, err := storage.QemuSpec(a)
	assert.NoError(t, err, "qemu-img spec of the attachment")
}

func testCreate(t *testing.T, p storage.Pool) {
	ctx := t.Context()
	info, err := p.Info(ctx)
	require.NoError(t, err)
	n := newNames(t, p)
	for _, f := range info.Formats {
		name := n.get(string(f))
		v, err := p.Create(ctx, storage.VolumeSpec{Name: name, Size: Size, Format: f})
		require.NoError(t, err, "create %s", f)
		assert.Equal(t, name, v.Name)
		assert.Equal(t, info.Name, v.Pool)
		assert.Equal(t, f, v.Format)
		assert.Equal(t, int64(Size), v.Capacity)
		assert.Empty(t, v.Parent)
		checkAttachment(t, v)

		got, err := p.Volume(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, v.Name, got.Name)
		assert.Equal(t, v.Capacity, got.Capacity)
		assert.Equal(t, v.Format, got.Format)
		assert.Equal(t, v.Attachment, got.Attachment)
		assert.GreaterOrEqual(t, got.Allocated, int64(0))

		_, err = p.Create(ctx, storage.VolumeSpec{Name: name, Size: Size, Format: f})
		assert.ErrorIs(t, err, virtplane.ErrAlreadyExists, "second create of %q", name)
	}
	// The default format is the first one listed.
	name := n.get("default")
	v, err := p.Create(ctx, storage.VolumeSpec{Name: name, Size: Size})
	require.NoError(t, err)
	assert.Equal(t, info.Formats[0], v.Format)

	after, err := p.Info(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after.Allocated, int64(Size), "allocated counts the new volumes")
}

// BadNames are names every pool must refuse with ErrInvalidArgument.
var BadNames = []string{"", "-rf", "--help", "../etc", "a/b", "/abs", "..", ".hidden", "a b", "x;rm", "$(id)", "a:b", "a,b", "new\nline", strings.Repeat("a", storage.MaxNameLen+1)}

func testBadInput(t *testing.T, p storage.Pool) {
	ctx := t.Context()
	for _, bad := range BadNames {
		_, err := p.Create(ctx, storage.VolumeSpec{Name: bad, Size: Size})
		require.ErrorIs(t, err, virtplane.ErrInvalidArgument, "create %q", bad)
		if bad != "" {
			quoted := strconv.Quote(bad[:min(len(bad), 20)])
			assert.Contains(t, err.Error(), quoted[:len(quoted)-1], "the error names the value")
		}
		_, err = p.Volume(ctx, bad)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "stat %q", bad)
		assert.ErrorIs(t, p.Delete(ctx, bad), virtplane.ErrInvalidArgument, "delete %q", bad)
	}
	n := newNames(t, p)
	for _, size := range []int64{0, -1, -Size} {
		_, err := p.Create(ctx, storage.VolumeSpec{Name: n.get("size"), Size: size})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "size %d", size)
	}
	_, err := p.Create(ctx, storage.VolumeSpec{Name: n.get("fmt"), Size: Size, Format: "vmdk"})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "vmdk")
}

func testNotFound(t *testing.T, p storage.Pool) {
	ctx := t.Context()
	name := RandomName() + "-missing"
	_, err := p.Volume(ctx, name)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	assert.ErrorIs(t, p.Delete(ctx, name), virtplane.ErrNotFound)
	if r, ok := storage.As[storage.Resizer](p); ok {
		_, err := r.Resize(ctx, name, Size, storage.ResizeOptions{})
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
	}
	if c, ok := storage.As[storage.Cloner](p); ok {
		_, err := c.Clone(ctx, name, name+"-c", storage.CloneLinked)
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
	}
	if s, ok := storage.As[storage.Snapshotter](p); ok {
		_, err := s.CreateSnapshot(ctx, name, "s1")
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
		_, err = s.ListSnapshots(ctx, name)
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
	}
}

func testList(t *testing.T, p storage.Pool) {
	ctx := t.Context()
	n := newNames(t, p)
	b, a := n.get("b"), n.get("a")
	for _, name := range []string{b, a} {
		_, err := p.Create(ctx, storage.VolumeSpec{Name: name, Size: Size})
		require.NoError(t, err)
	}
	vols, err := p.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{a, b}, mine(vols, n.prefix), "sorted by name")
	assert.True(t, slices.IsSortedFunc(vols, func(x, y storage.Volume) int { return strings.Compare(x.Name, y.Name) }))
	for _, v := range vols {
		if v.Name == a {
			assert.Equal(t, int64(Size), v.Capacity)
			checkAttachment(t, v)
		}
	}

	require.NoError(t, p.Delete(ctx, a))
	_, err = p.Volume(ctx, a)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	assert.ErrorIs(t, p.Delete(ctx, a), virtplane.ErrNotFound, "second delete")
	vols, err = p.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{b}, mine(vols, n.prefix))
}

func testResize(t *testing.T, p storage.Pool, r storage.Resizer) {
	ctx := t.Context()
	n := newNames(t, p)
	name := n.get("r")
	_, err := p.Create(ctx, storage.VolumeSpec{Name: name, Size: Size})
	require.NoError(t, err)

	v, err := r.Resize(ctx, name, 2*Size, storage.ResizeOptions{})
	require.NoError(t, err, "grow")
	assert.Equal(t, int64(2*Size), v.Capacity)
	got, err := p.Volume(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, int64(2*Size), got.Capacity)

	_, err = r.Resize(ctx, name, Size, storage.ResizeOptions{})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument, "shrink without AllowShrink")
	got, err = p.Volume(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, int64(2*Size), got.Capacity, "a refused shrink changes nothing")

	for _, bad := range []int64{0, -1} {
		_, err = r.Resize(ctx, name, bad, storage.ResizeOptions{AllowShrink: true})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "size %d", bad)
	}

	v, err = r.Resize(ctx, name, Size, storage.ResizeOptions{AllowShrink: true})
	require.NoError(t, err, "shrink with AllowShrink")
	assert.Equal(t, int64(Size), v.Capacity)
}

func testClone(t *testing.T, p storage.Pool, c storage.Cloner) {
	ctx := t.Context()
	n := newNames(t, p)
	base := n.get("base")
	bv, err := p.Create(ctx, storage.VolumeSpec{Name: base, Size: Size})
	require.NoError(t, err)

	t.Run("Linked", func(t *testing.T) {
		name := n.get("linked")
		v, err := c.Clone(ctx, base, name, storage.CloneLinked)
		require.NoError(t, err)
		assert.Equal(t, name, v.Name)
		assert.Equal(t, base, v.Parent)
		assert.Equal(t, bv.Capacity, v.Capacity)
		assert.Equal(t, bv.Format, v.Format)
		checkAttachment(t, v)
		got, err := p.Volume(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, base, got.Parent, "stat reports the parent")

		_, err = c.Clone(ctx, base, name, storage.CloneLinked)
		assert.ErrorIs(t, err, virtplane.ErrAlreadyExists)
		assert.ErrorIs(t, p.Delete(ctx, base), virtplane.ErrConflict, "a parent of a linked clone cannot go")
		_, err = p.Volume(ctx, base)
		require.NoError(t, err, "the refused delete kept the parent")

		second := n.get("linked2")
		_, err = c.Clone(ctx, base, second, storage.CloneLinked)
		require.NoError(t, err, "a second linked clone of the same parent")
		require.NoError(t, p.Delete(ctx, name))
		assert.ErrorIs(t, p.Delete(ctx, base), virtplane.ErrConflict, "one clone is left")
		require.NoError(t, p.Delete(ctx, second))
	})
	t.Run("Full", func(t *testing.T) {
		src := n.get("fullsrc")
		_, err := p.Create(ctx, storage.VolumeSpec{Name: src, Size: Size})
		require.NoError(t, err)
		name := n.get("full")
		v, err := c.Clone(ctx, src, name, storage.CloneFull)
		require.NoError(t, err)
		assert.Empty(t, v.Parent)
		assert.Equal(t, int64(Size), v.Capacity)
		require.NoError(t, p.Delete(ctx, src), "a full clone does not hold its source")
		_, err = p.Volume(ctx, name)
		require.NoError(t, err)
	})
	t.Run("BadInput", func(t *testing.T) {
		for _, bad := range BadNames {
			_, err := c.Clone(ctx, base, bad, storage.CloneLinked)
			assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "clone to %q", bad)
		}
	})
}

func testSnapshots(t *testing.T, p storage.Pool, s storage.Snapshotter) {
	ctx := t.Context()
	n := newNames(t, p)
	name := n.get("snap")
	_, err := p.Create(ctx, storage.VolumeSpec{Name: name, Size: Size})
	require.NoError(t, err)

	list, err := s.ListSnapshots(ctx, name)
	require.NoError(t, err)
	assert.Empty(t, list)
	for _, sn := range []string{"s1", "s2"} {
		got, err := s.CreateSnapshot(ctx, name, sn)
		require.NoError(t, err)
		assert.Equal(t, sn, got.Name)
		assert.Equal(t, name, got.Volume)
	}
	_, err = s.CreateSnapshot(ctx, name, "s1")
	assert.ErrorIs(t, err, virtplane.ErrAlreadyExists)
	for _, bad := range BadNames {
		_, err = s.CreateSnapshot(ctx, name, bad)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "snapshot %q", bad)
	}
	list, err = s.ListSnapshots(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, []string{"s1", "s2"}, snapNames(list), "oldest first")

	require.NoError(t, s.RevertSnapshot(ctx, name, "s1"))
	assert.ErrorIs(t, s.RevertSnapshot(ctx, name, "nope"), virtplane.ErrNotFound)
	assert.ErrorIs(t, s.DeleteSnapshot(ctx, name, "nope"), virtplane.ErrNotFound)

	require.NoError(t, s.DeleteSnapshot(ctx, name, "s1"))
	list, err = s.ListSnapshots(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, []string{"s2"}, snapNames(list))

	// A volume with snapshots can be deleted; its snapshots go with it.
	require.NoError(t, p.Delete(ctx, name))
	_, err = p.Volume(ctx, name)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

func snapNames(list []storage.Snapshot) []string {
	out := []string{}
	for _, s := range list {
		out = append(out, s.Name)
	}
	return out
}

func testActivate(t *testing.T, p storage.Pool, a storage.Activator) {
	ctx := t.Context()
	n := newNames(t, p)
	name := n.get("act")
	_, err := p.Create(ctx, storage.VolumeSpec{Name: name, Size: Size})
	require.NoError(t, err)
	require.NoError(t, a.Activate(ctx, name))
	require.NoError(t, a.Deactivate(ctx, name))
	missing := RandomName() + "-missing"
	assert.ErrorIs(t, a.Activate(ctx, missing), virtplane.ErrNotFound)
	assert.ErrorIs(t, a.Activate(ctx, "-rf"), virtplane.ErrInvalidArgument)
}

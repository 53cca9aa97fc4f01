package lvm_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/fake"
	"github.com/virtplane/virtplane/storage/lvm"
	"github.com/virtplane/virtplane/storage/storagetest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestConformance runs the suite against the real VG (metadata only: no
// device-mapper here, so LVs are created inactive and never get a device).
func TestConformance(t *testing.T) {
	env := testenv.RequireLVM(t)
	storagetest.Run(t, func(t *testing.T) storage.Pool {
		p, err := lvm.New(lvm.Config{Name: "lvm", VG: env.VG, Env: env.Env(), NoActivation: true, Tags: map[string]string{"tier": "hdd"}})
		require.NoError(t, err)
		return p
	})
}

// Foreign LVs (without the virtplane tag) in the same VG are invisible and untouchable.
func TestForeignLVsAreLeftAlone(t *testing.T) {
	env := testenv.RequireLVM(t)
	ctx := t.Context()
	name := storagetest.RandomName() + "-foreign"
	ex := storage.LocalExecutor{Env: env.Env()}
	_, err := ex.Run(ctx, storage.Command{Name: "lvcreate", Args: []string{"-y", "-an", "-Zn", "-Wn", "-L", "4m", "-n", name, env.VG}})
	require.NoError(t, err)
	t.Cleanup(func() {
		// Not t.Context(): it is canceled before cleanups run.
		_, err := ex.Run(context.Background(), storage.Command{Name: "lvremove", Args: []string{"-y", env.VG + "/" + name}})
		assert.NoError(t, err, "cleanup: lvremove %s", name)
	})
	p, err := lvm.New(lvm.Config{Name: "lvm", VG: env.VG, Env: env.Env(), NoActivation: true})
	require.NoError(t, err)
	_, err = p.Volume(ctx, name)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	assert.ErrorIs(t, p.Delete(ctx, name), virtplane.ErrNotFound)
	vols, err := p.List(ctx)
	require.NoError(t, err)
	for _, v := range vols {
		assert.NotEqual(t, name, v.Name)
	}
}

func TestReservedNames(t *testing.T) {
	p, err := lvm.New(lvm.Config{Name: "lvm", VG: "vg", Exec: &fake.Executor{}})
	require.NoError(t, err)
	for _, bad := range []string{"snapshot1", "pvmove0", "a_tmeta", "x_rimage_1"} {
		_, err := p.Create(t.Context(), storage.VolumeSpec{Name: bad, Size: 4 << 20})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, bad)
	}
	_, err = lvm.New(lvm.Config{Name: "lvm", VG: "-vg"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

// row is one LV of a scripted lvs report.
type row struct {
	name, size, tags, origin, pool, time string
}

func lvsJSON(rows ...row) string {
	var parts []string
	for _, r := range rows {
		if r.time == "" {
			r.time = "2026-11-23 10:00:00 +0000"
		}
		parts = append(parts, fmt.Sprintf(`{"lv_name":%q, "lv_size":%q, "lv_attr":"Vwi---tz-k", "lv_tags":%q, "origin":%q, "pool_lv":%q, "lv_time":%q}`,
			r.name, r.size, r.tags, r.origin, r.pool, r.time))
	}
	return `{"report": [{"lv": [` + strings.Join(parts, ",") + `]}]}`
}

const gib = "1073741824"

func golden(t *testing.T, ex *fake.Executor) {
	t.Helper()
	path := filepath.Join("testdata", strings.ReplaceAll(t.Name(), "/", "_")+".golden")
	got := ex.Transcript()
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create %s", path)
	assert.Equal(t, string(want), got)
}

func thin(t *testing.T, ex *fake.Executor, cfg lvm.Config) *lvm.ThinPool {
	t.Helper()
	cfg.Name, cfg.VG, cfg.ThinPool, cfg.Exec = "thin", "vg0", "tpool", ex
	cfg.Env = []string{"LVM_SYSTEM_DIR=/etc/lvm"}
	p, err := lvm.NewThin(cfg)
	require.NoError(t, err)
	return p
}

var (
	tpool = row{name: "tpool", size: "10737418240"}
	base  = row{name: "base", size: gib, tags: "virtplane", pool: "tpool"}
	vm1   = row{name: "vm1", size: gib, tags: "virtplane", origin: "base", pool: "tpool"}
	snap1 = row{name: "base.s1", size: gib, tags: "virtplane,virtplane_snap_of=base", origin: "base", pool: "tpool"}
)

// TestThinGolden records the exact lvm2 commands of the thin-pool
// operations this kernel cannot run (thin pools need device-mapper).
func TestThinGolden(t *testing.T) {
	t.Run("Create", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.Once("lvs", lvsJSON(tpool), nil)
		ex.Once("lvs", lvsJSON(tpool, base), nil)
		v, err := thin(t, ex, lvm.Config{}).Create(t.Context(), storage.VolumeSpec{Name: "base", Size: 1 << 30})
		require.NoError(t, err)
		assert.Equal(t, storage.Attachment{Kind: "block", Path: "/dev/vg0/base", Format: "raw"}, v.Attachment)
		golden(t, ex)
	})
	t.Run("LinkedClone", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.Once("lvs", lvsJSON(tpool, base), nil)
		ex.Once("lvs", lvsJSON(tpool, base, vm1), nil)
		v, err := thin(t, ex, lvm.Config{}).Clone(t.Context(), "base", "vm1", storage.CloneLinked)
		require.NoError(t, err)
		assert.Equal(t, "base", v.Parent)
		golden(t, ex)
	})
	t.Run("FullClone", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.Once("lvs", lvsJSON(tpool, base), nil)
		ex.Once("lvs", lvsJSON(tpool, base, row{name: "vm2", size: gib, tags: "virtplane", pool: "tpool"}), nil)
		v, err := thin(t, ex, lvm.Config{}).Clone(t.Context(), "base", "vm2", storage.CloneFull)
		require.NoError(t, err)
		assert.Empty(t, v.Parent)
		golden(t, ex)
	})
	t.Run("FullCloneConvertFails", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("lvs", lvsJSON(tpool, base), nil)
		ex.FailOnce("qemu-img convert", errors.New("injected"))
		_, err := thin(t, ex, lvm.Config{}).Clone(t.Context(), "base", "vm2", storage.CloneFull)
		require.ErrorContains(t, err, "injected")
		golden(t, ex) // the new LV is removed and both are deactivated
	})
	t.Run("Snapshot", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.Once("lvs", lvsJSON(tpool, base), nil)
		ex.Once("lvs", lvsJSON(tpool, base, snap1), nil)
		s, err := thin(t, ex, lvm.Config{}).CreateSnapshot(t.Context(), "base", "s1")
		require.NoError(t, err)
		assert.Equal(t, "s1", s.Name)
		golden(t, ex)
	})
	t.Run("ListSnapshots", func(t *testing.T) {
		ex := &fake.Executor{}
		older := row{name: "base.s0", size: gib, tags: "virtplane,virtplane_snap_of=base", origin: "base", pool: "tpool", time: "2026-11-22 10:00:00 +0000"}
		ex.On("lvs", lvsJSON(tpool, base, snap1, older), nil)
		list, err := thin(t, ex, lvm.Config{}).ListSnapshots(t.Context(), "base")
		require.NoError(t, err)
		require.Len(t, list, 2)
		assert.Equal(t, []string{"s0", "s1"}, []string{list[0].Name, list[1].Name}, "oldest first")
		vols, err := thin(t, ex, lvm.Config{}).List(t.Context())
		require.NoError(t, err)
		require.Len(t, vols, 1, "snapshot LVs are not volumes, foreign LVs are not listed")
	})
	t.Run("Revert", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("lvs", lvsJSON(tpool, base, snap1), nil)
		require.NoError(t, thin(t, ex, lvm.Config{}).RevertSnapshot(t.Context(), "base", "s1"))
		golden(t, ex)
	})
	t.Run("RevertFailsHalfway", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("lvs", lvsJSON(tpool, base, snap1), nil)
		ex.FailOnce("lvcreate", errors.New("injected"))
		require.ErrorContains(t, thin(t, ex, lvm.Config{}).RevertSnapshot(t.Context(), "base", "s1"), "injected")
		golden(t, ex) // the volume is renamed back
	})
	t.Run("RevertUnderClones", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("lvs", lvsJSON(tpool, base, snap1, vm1), nil)
		assert.ErrorIs(t, thin(t, ex, lvm.Config{}).RevertSnapshot(t.Context(), "base", "s1"), virtplane.ErrConflict)
	})
	t.Run("DeleteSnapshot", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("lvs", lvsJSON(tpool, base, snap1), nil)
		require.NoError(t, thin(t, ex, lvm.Config{}).DeleteSnapshot(t.Context(), "base", "s1"))
		golden(t, ex)
	})
	t.Run("DeleteWithSnapshots", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("lvs", lvsJSON(tpool, base, snap1), nil)
		require.NoError(t, thin(t, ex, lvm.Config{}).Delete(t.Context(), "base"))
		golden(t, ex)
	})
	t.Run("DeleteParent", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("lvs", lvsJSON(tpool, base, vm1), nil)
		assert.ErrorIs(t, thin(t, ex, lvm.Config{}).Delete(t.Context(), "base"), virtplane.ErrConflict)
	})
	t.Run("Activate", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("lvs", lvsJSON(tpool, base), nil)
		p := thin(t, ex, lvm.Config{})
		require.NoError(t, p.Activate(t.Context(), "base"))
		require.NoError(t, p.Deactivate(t.Context(), "base"))
		golden(t, ex)
	})
	t.Run("ActivateExclusive", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("lvs", lvsJSON(tpool, base), nil)
		require.NoError(t, thin(t, ex, lvm.Config{ExclusiveActivation: true}).Activate(t.Context(), "base"))
		golden(t, ex)
	})
	t.Run("ThickCreateOnRealHost", func(t *testing.T) {
		ex := &fake.Executor{}
		thick := row{name: "vm3", size: gib, tags: "virtplane"}
		ex.Once("lvs", lvsJSON(), nil)
		ex.Once("lvs", lvsJSON(thick), nil)
		p, err := lvm.New(lvm.Config{Name: "thick", VG: "vg0", Exec: ex})
		require.NoError(t, err)
		_, err = p.Create(t.Context(), storage.VolumeSpec{Name: "vm3", Size: 1 << 30})
		require.NoError(t, err)
		golden(t, ex)
	})
}

func TestErrorMapping(t *testing.T) {
	ex := &fake.Executor{}
	ex.On("lvs", lvsJSON(), nil)
	ex.On("lvcreate", "", &storage.ExitError{Code: 5, Stderr: "  Volume group \"vg0\" has insufficient free space (2 extents): 256 required."})
	p, err := lvm.New(lvm.Config{Name: "thick", VG: "vg0", Exec: ex})
	require.NoError(t, err)
	_, err = p.Create(t.Context(), storage.VolumeSpec{Name: "big", Size: 1 << 40})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
}

func FuzzParseLVs(f *testing.F) {
	f.Add([]byte(lvsJSON(tpool, base, snap1)))
	f.Add([]byte(`{"report":[{"lv":[{"lv_size":"-1"}]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		lvs, err := lvm.ParseLVs(b)
		for _, l := range lvs {
			if err == nil && l.Size < 0 {
				t.Fatalf("negative size accepted: %+v", l)
			}
		}
	})
}

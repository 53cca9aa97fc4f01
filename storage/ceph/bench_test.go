//go:build ceph

package ceph_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rbd"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/storagetest"
)

// BenchmarkLinkedClone clones a 1 GiB and a 20 GiB image (16 MiB of data
// each) through the driver, and clones the 1 GiB image with bare go-ceph
// calls (snapshot, protect, clone: what `rbd clone` needs) in the same loop.
// It reports the 20G/1G ratio and driver/bare.
func BenchmarkLinkedClone(b *testing.B) {
	ctx := b.Context()
	p := newPool(b)
	ioctx := p.IOContext()
	prefix := storagetest.RandomName()
	base1, base20 := prefix+"-1g", prefix+"-20g"
	for _, base := range []struct {
		name string
		size int64
	}{{base1, 1 << 30}, {base20, 20 << 30}} {
		_, err := p.Create(ctx, storage.VolumeSpec{Name: base.name, Size: base.size})
		require.NoError(b, err)
		img, err := rbd.OpenImage(ioctx, base.name, rbd.NoSnapshot)
		require.NoError(b, err)
		data := make([]byte, 8<<20)
		for i := range data {
			data[i] = 0xab
		}
		_, err = img.WriteAt(data, 0)
		require.NoError(b, err)
		_, err = img.WriteAt(data, base.size-int64(len(data)))
		require.NoError(b, err)
		require.NoError(b, img.Close())
	}
	var bare []string
	var clones []string
	b.Cleanup(func() {
		for _, c := range clones {
			deleteOrReport(b, p, c)
		}
		for _, c := range bare {
			_ = rbd.RemoveImage(ioctx, c)
			if img, err := rbd.OpenImage(ioctx, base1, rbd.NoSnapshot); err == nil {
				s := img.GetSnapshot("bare-" + c)
				_ = s.Unprotect()
				_ = s.Remove()
				_ = img.Close()
			}
		}
		deleteOrReport(b, p, base1)
		deleteOrReport(b, p, base20)
	})

	var d1, d20, dBare time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		steps := []func(){
			func() {
				name := fmt.Sprintf("%s-c1-%d", prefix, i)
				t0 := time.Now()
				_, err := p.Clone(ctx, base1, name, storage.CloneLinked)
				d1 += time.Since(t0)
				require.NoError(b, err)
				clones = append(clones, name)
			},
			func() {
				name := fmt.Sprintf("%s-bare-%d", prefix, i)
				t0 := time.Now()
				img, err := rbd.OpenImage(ioctx, base1, rbd.NoSnapshot)
				require.NoError(b, err)
				snap, err := img.CreateSnapshot("bare-" + name)
				require.NoError(b, err)
				require.NoError(b, snap.Protect())
				opts := rbd.NewRbdImageOptions()
				require.NoError(b, rbd.CloneImage(ioctx, base1, "bare-"+name, ioctx, name, opts))
				opts.Destroy()
				require.NoError(b, img.Close())
				dBare += time.Since(t0)
				bare = append(bare, name)
			},
			func() {
				name := fmt.Sprintf("%s-c20-%d", prefix, i)
				t0 := time.Now()
				_, err := p.Clone(ctx, base20, name, storage.CloneLinked)
				d20 += time.Since(t0)
				require.NoError(b, err)
				clones = append(clones, name)
			},
		}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, s := range steps {
			s()
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(d1.Nanoseconds())/n, "ns/clone-1G")
	b.ReportMetric(float64(d20.Nanoseconds())/n, "ns/clone-20G")
	b.ReportMetric(float64(dBare.Nanoseconds())/n, "ns/bare-go-ceph-1G")
	b.ReportMetric(float64(d20)/float64(d1), "ratio-20G/1G")
	b.ReportMetric(float64(d1)/float64(dBare), "ratio-driver/bare")
}

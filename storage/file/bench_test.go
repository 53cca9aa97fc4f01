package file_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/storage"
)

// BenchmarkLinkedClone clones a 1 GiB and a 20 GiB base (each with 64 MiB of
// data) through the driver, and makes the same overlay with a bare
// `qemu-img create -b` in the same loop. It reports the 20G/1G ratio (a
// linked clone must be O(1) in the image size) and driver/bare.
func BenchmarkLinkedClone(b *testing.B) {
	needQemuImg(b)
	ctx := b.Context()
	p := newPool(b, nil)
	for _, base := range []struct {
		name string
		size int64
	}{{"base1g", 1 << 30}, {"base20g", 20 << 30}} {
		v, err := p.Create(ctx, storage.VolumeSpec{Name: base.name, Size: base.size})
		require.NoError(b, err)
		out, err := exec.Command("qemu-io", "-c", "write -P 0xab 0 32M", "-c",
			fmt.Sprintf("write -P 0xcd %d 32M", base.size-32<<20), v.Attachment.Path).CombinedOutput()
		require.NoError(b, err, string(out))
	}
	bareDir := b.TempDir()
	base1g := filepath.Join(bareDir, "base1g.qcow2")
	require.NoError(b, os.Link(mustVolume(b, p, "base1g").Attachment.Path, base1g))

	var d1, d20, dBare time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate which goes first so that neither gets the warmer cache.
		steps := []func(){
			func() {
				t0 := time.Now()
				_, err := p.Clone(ctx, "base1g", fmt.Sprintf("c1-%d", i), storage.CloneLinked)
				d1 += time.Since(t0)
				require.NoError(b, err)
			},
			func() {
				t0 := time.Now()
				out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base1g.qcow2", "-F", "qcow2",
					filepath.Join(bareDir, fmt.Sprintf("bare-%d.qcow2", i))).CombinedOutput()
				dBare += time.Since(t0)
				require.NoError(b, err, string(out))
			},
			func() {
				t0 := time.Now()
				_, err := p.Clone(ctx, "base20g", fmt.Sprintf("c20-%d", i), storage.CloneLinked)
				d20 += time.Since(t0)
				require.NoError(b, err)
			},
		}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			step()
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(d1.Nanoseconds())/n, "ns/clone-1G")
	b.ReportMetric(float64(d20.Nanoseconds())/n, "ns/clone-20G")
	b.ReportMetric(float64(dBare.Nanoseconds())/n, "ns/bare-qemu-img-1G")
	b.ReportMetric(float64(d20)/float64(d1), "ratio-20G/1G")
	b.ReportMetric(float64(d1)/float64(dBare), "ratio-driver/bare")
}

func mustVolume(b *testing.B, p storage.Pool, name string) storage.Volume {
	b.Helper()
	v, err := p.Volume(b.Context(), name)
	require.NoError(b, err)
	return v
}

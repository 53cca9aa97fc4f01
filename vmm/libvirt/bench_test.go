package libvirt_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// BenchmarkCreateToRunning compares create → running through the driver
// (validation, rendering, existence check, define, start, read-back) with
// the same domain XML sent through bare go-libvirt calls (define + create),
// alternating the two in one run. It reports both latencies and their
// ratio (overhead-x; goal ≤ 1.1).
func BenchmarkCreateToRunning(b *testing.B) {
	f := newFixtureTB(b)
	ctx := context.Background()
	lv := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(f.env.Socket)))
	require.NoError(b, lv.ConnectToURI(golibvirt.ConnectURI(f.env.URI)))
	b.Cleanup(func() { _ = lv.Disconnect() })

	var driverTime, bareTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		spec := f.benchSpec(b, "vpt-bd-"+randHex(3))
		bare := f.benchSpec(b, "vpt-bb-"+randHex(3))
		x, err := libvirt.RenderXML(bare, f.env.Values(), filepath.Join(f.dir, "state"), nil)
		require.NoError(b, err)
		// The driver makes this directory inside Create; the bare side gets it ready-made.
		require.NoError(b, os.MkdirAll(filepath.Join(f.dir, "state", bare.Name), 0o755))
		b.StartTimer()

		b.Cleanup(func() {
			cctx := context.Background()
			_ = f.d.Stop(cctx, spec.Name)
			_ = f.d.Delete(cctx, spec.Name)
			if dom, err := lv.DomainLookupByName(bare.Name); err == nil {
				_ = lv.DomainDestroy(dom)
				_ = lv.DomainUndefineFlags(dom, 0)
			}
		})
		viaDriver := func() {
			start := time.Now()
			_, err := f.d.Create(ctx, spec)
			require.NoError(b, err)
			require.NoError(b, f.d.Start(ctx, spec.Name))
			driverTime += time.Since(start)
			// Tear down before the other side runs: a booting guest
			// would steal the CPU from it.
			b.StopTimer()
			require.NoError(b, f.d.Stop(ctx, spec.Name))
			require.NoError(b, f.d.Delete(ctx, spec.Name))
			b.StartTimer()
		}
		viaBare := func() {
			start := time.Now()
			dom, err := lv.DomainDefineXMLFlags(x, golibvirt.DomainDefineValidate)
			require.NoError(b, err)
			require.NoError(b, lv.DomainCreate(dom))
			bareTime += time.Since(start)
			b.StopTimer()
			require.NoError(b, lv.DomainDestroy(dom))
			require.NoError(b, lv.DomainUndefineFlags(dom, 0))
			b.StartTimer()
		}
		// Alternate the order so neither side always runs on a warmer host.
		if i%2 == 0 {
			viaDriver()
			viaBare()
		} else {
			viaBare()
			viaDriver()
		}
	}
	b.ReportMetric(float64(driverTime.Milliseconds())/float64(b.N), "driver-ms/op")
	b.ReportMetric(float64(bareTime.Milliseconds())/float64(b.N), "bare-ms/op")
	b.ReportMetric(float64(driverTime)/float64(bareTime), "overhead-x")
}

// benchSpec is a small bootable machine without cloud-init or console, so
// that both sides define exactly the same domain.
func (f *fixture) benchSpec(tb testing.TB, name string) vmm.Spec {
	disk := filepath.Join(f.dir, name+".qcow2")
	qcow2(tb, disk)
	return vmm.Spec{
		Name: name, VCPUs: 1, MemoryMiB: 128,
		Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: disk, Format: "qcow2"}}},
		Boot:  vmm.Boot{Kernel: f.guest.kernel, Initrd: f.guest.initrd, Cmdline: "console=ttyS0"},
	}
}

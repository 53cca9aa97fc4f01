//go:build ceph

package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rbd"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/internal/testenv"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/ceph"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	vmmfake "github.com/virtplane/virtplane/vmm/fake"
)

// BenchmarkCreateOnStorage orders VMs through the HTTP API whose root disk
// is on a real storage, a 1 GiB linked clone of a real image, and times
// each create from the request to its task's end. The node's hypervisor
// and network ports are the fakes, so what is measured is the daemon's
// path (API, task, placement, address, storage) around the disk. The
// reference in the same run, interleaved with it, is the bare library
// call that makes the same disk: on Ceph go-ceph's snapshot, protect,
// clone and resize (the driver's own steps); on file `qemu-img create -b`.
// daemon/bare is the ratio of the mean times. Run with -benchtime 5x:
// an RBD clone takes about a second here.
func BenchmarkCreateOnStorage(b *testing.B) {
	guest := testenv.RequireGuest(b)
	cph := testenv.RequireCeph(b)
	for _, backend := range []string{"ceph", "file"} {
		b.Run(backend, func(b *testing.B) {
			ctx := b.Context()
			dir := hostTempDir(b, "vpt-bench-storage-")
			require.NoError(b, os.MkdirAll(filepath.Join(dir, "own"), 0o755))
			own, err := file.New(file.Config{Name: "own", Dir: filepath.Join(dir, "own")})
			require.NoError(b, err)
			ports := netport.NewFake()
			drv := vmmfake.New()
			srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(b), Instance: "bench-storage", DataDir: filepath.Join(dir, "data"),
				LocalDriver:  func(context.Context) (vmm.Driver, error) { return drv, nil },
				LocalStorage: func(context.Context) (storage.Pool, error) { return own, nil },
				LocalPorts:   func(context.Context) (netport.Ports, error) { return ports, nil },
			})
			require.NoError(b, err)
			c := serveAdmin(b, srv)
			files := model.StorageRef{Name: "local", Driver: "file", Path: filepath.Join(dir, "files")}
			rbdRef := model.StorageRef{Name: "rbd", Driver: "ceph", Path: cph.Pool, Options: map[string]string{"conf": cph.Conf, "user": cph.User, "monitors": cph.Monitors}}
			target := files
			storages := []model.StorageRef{files}
			if backend == "ceph" {
				storages, target = append(storages, rbdRef), rbdRef
			}
			cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "bench", CPUOvercommit: 64, RAMOvercommit: 8, DiskOvercommit: 16, Storages: storages})
			require.NoError(b, err)
			_, err = c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "local1", Address: "local"})
			require.NoError(b, err)
			ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: "bench", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "10.64.0.0/16"}}})
			require.NoError(b, err)
			img, err := c.CreateImage(ctx, api.ImageBody{Name: "guest", OSType: "linux", Source: guest.Disk, Format: "qcow2"})
			require.NoError(b, err)
			_, tk, err := c.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: cl.ID})
			succeededB(b, c, tk, err)

			var vms []string
			n := 0
			create := func() time.Duration {
				n++
				t0 := time.Now()
				vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: fmt.Sprintf("b%d", n), ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID,
					CPUs: 1, MemoryMiB: 128, DiskGiB: 1, Storage: target.Name, Console: "none"}, "")
				succeededB(b, c, tk, err)
				vms = append(vms, vm.ID)
				return time.Since(t0)
			}
			b.Cleanup(func() {
				for _, id := range vms {
					if tk, err := c.DeleteVM(context.Background(), id); err == nil {
						_, _ = c.WaitTask(context.Background(), tk.ID)
					}
				}
				if tk, err := c.DeleteImage(context.Background(), img.ID); err == nil {
					_, _ = c.WaitTask(context.Background(), tk.ID)
				}
			})
			create() // the first one copies the image's base into RBD

			var bare func(i int) time.Duration
			switch backend {
			case "ceph":
				p, err := ceph.New(ctx, ceph.Config{Name: "bench", Pool: cph.Pool, Conf: cph.Conf, User: cph.User})
				require.NoError(b, err)
				b.Cleanup(func() { _ = p.Close() })
				ioctx, base := p.IOContext(), flow.ImageVolume(img.ID)
				var made []string
				b.Cleanup(func() {
					for _, name := range made {
						_ = rbd.RemoveImage(ioctx, name)
						if im, err := rbd.OpenImage(ioctx, base, rbd.NoSnapshot); err == nil {
							s := im.GetSnapshot("bare-" + name)
							_ = s.Unprotect()
							_ = s.Remove()
							_ = im.Close()
						}
					}
				})
				opts := rbd.NewRbdImageOptions()
				defer opts.Destroy()
				require.NoError(b, opts.SetUint64(rbd.ImageOptionFeatures, 1)) // layering
				bare = func(i int) time.Duration {
					name := fmt.Sprintf("vpt-bench-bare-%s-%d", img.ID, i)
					t0 := time.Now()
					im, err := rbd.OpenImage(ioctx, base, rbd.NoSnapshot)
					require.NoError(b, err)
					snap, err := im.CreateSnapshot("bare-" + name)
					require.NoError(b, err)
					require.NoError(b, snap.Protect())
					require.NoError(b, im.Close())
					require.NoError(b, rbd.CloneImage(ioctx, base, "bare-"+name, ioctx, name, opts))
					made = append(made, name)
					cl, err := rbd.OpenImage(ioctx, name, rbd.NoSnapshot)
					require.NoError(b, err)
					require.NoError(b, cl.Resize(1<<30))
					require.NoError(b, cl.Close())
					return time.Since(t0)
				}
			case "file":
				baseVol, err := mustPool(b, files).Volume(ctx, flow.ImageVolume(img.ID))
				require.NoError(b, err)
				bareDir := filepath.Join(dir, "bare")
				require.NoError(b, os.MkdirAll(bareDir, 0o755))
				bare = func(i int) time.Duration {
					t0 := time.Now()
					out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", baseVol.Attachment.Path,
						filepath.Join(bareDir, fmt.Sprintf("c%d.qcow2", i)), "1G").CombinedOutput()
					require.NoError(b, err, string(out))
					return time.Since(t0)
				}
			}

			var dDaemon, dBare time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					dDaemon += create()
					dBare += bare(i)
				} else {
					dBare += bare(i)
					dDaemon += create()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(dDaemon.Milliseconds())/float64(b.N), "daemon-ms/op")
			b.ReportMetric(float64(dBare.Microseconds())/1000/float64(b.N), "bare-ms/op")
			b.ReportMetric(float64(dDaemon)/float64(dBare), "daemon/bare")
		})
	}
}

func mustPool(b *testing.B, ref model.StorageRef) storage.Pool {
	p, err := file.New(file.Config{Name: ref.Name, Dir: ref.Path})
	require.NoError(b, err)
	return p
}

// succeededB waits for a task and requires it to have succeeded.
func succeededB(b *testing.B, c *client.Client, tk api.TaskView, err error) {
	b.Helper()
	require.NoError(b, err)
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(b, err)
	require.NoError(b, client.TaskError(tk))
}

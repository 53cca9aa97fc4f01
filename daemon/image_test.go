package daemon_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/simnode"
)

// imageServer serves raw disk images of the given sizes by path, on loopback.
func imageServer(t *testing.T, sizes map[string]int) *httptest.Server {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := sizes[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "disk.raw", time.Time{}, bytes.NewReader(make([]byte, n)))
	}))
	t.Cleanup(hs.Close)
	return hs
}

// progressOf collects the messages of a task's progress events.
type progressOf struct {
	mu   sync.Mutex
	msgs []string
	sub  *events.Subscription
}

func watchProgress(t *testing.T, bus *events.Bus) *progressOf {
	p := &progressOf{sub: bus.Subscribe(func(e events.Event) bool { return e.Type == "task" }, 4096)}
	go func() {
		for ev := range p.sub.C {
			p.mu.Lock()
			p.msgs = append(p.msgs, ev.Message)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(p.sub.Close)
	return p
}

func (p *progressOf) has(sub string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// TestImageImport imports images through the API into the storage of every
// node of a cluster (two simulated nodes): from a file and from a URL with
// progress, a VM cloned from the result, failures half-way that remove
// what was imported, and a delete that leaves nothing behind.
func TestImageImport(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEnv(t, st)
	ctx := t.Context()
	admin := e.admin
	node2, err := admin.AddNode(ctx, api.NodeBody{ClusterID: e.cluster.ID, Name: "sim2", Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100})
	require.NoError(t, err)
	nodes := []string{e.node.ID, node2.ID}
	_, pool2 := e.simParts(t, node2.ID)
	bases := func(imageID string) (n int) {
		for _, id := range nodes {
			pool, err := e.srv.Flow.NodePool(ctx, id)
			require.NoError(t, err)
			if _, err := pool.Volume(ctx, flow.ImageVolume(imageID)); err == nil {
				n++
			} else {
				require.ErrorIs(t, err, virtplane.ErrNotFound)
			}
		}
		return n
	}
	cached := func(imageID string) bool {
		_, err := os.Stat(filepath.Join(e.srv.DataDir(), "image-cache", flow.ImageVolume(imageID)+".img"))
		return err == nil
	}
	src := filepath.Join(t.TempDir(), "debian.raw")
	require.NoError(t, os.WriteFile(src, make([]byte, 3<<20), 0o644))
	hs := imageServer(t, map[string]int{"/alpine.raw": 6 << 20, "/big.raw": 8 << 20})

	var fromFile model.Image
	t.Run("from a file into every node of a cluster", func(t *testing.T) {
		img, err := admin.CreateImage(ctx, api.ImageBody{Name: "debian-raw", OSType: "linux", Source: src, Format: "raw"})
		require.NoError(t, err)
		assert.Equal(t, model.ImageRegistered, img.State)
		img, tk, err := admin.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: e.cluster.ID})
		require.NoError(t, err)
		assert.Equal(t, model.ImageImporting, img.State)
		succeeded(t, admin, tk, nil)
		img, err = admin.GetImage(ctx, img.ID)
		require.NoError(t, err)
		assert.Equal(t, model.ImageReady, img.State)
		assert.ElementsMatch(t, nodes, img.Nodes)
		assert.EqualValues(t, 3, img.SizeMiB)
		assert.Equal(t, "raw", img.Format)
		assert.Equal(t, tk.ID, img.TaskID)
		assert.Equal(t, 2, bases(img.ID))
		v, err := pool2.Volume(ctx, flow.ImageVolume(img.ID))
		require.NoError(t, err)
		assert.EqualValues(t, 3<<20, v.Capacity, "the base has the image's virtual size")
		assert.False(t, cached(img.ID), "a file source is read in place")

		// Again: every node holds it, nothing is imported twice.
		_, tk, err = admin.ImportImage(ctx, img.ID, api.ImageImportBody{NodeID: node2.ID})
		succeeded(t, admin, tk, err)
		fromFile = img
	})
	t.Run("a VM is a linked clone of the import", func(t *testing.T) {
		b := e.vmBody("from-import")
		b.ImageID = fromFile.ID
		vm, tk, err := e.alice.CreateVM(ctx, b, "")
		succeeded(t, e.alice, tk, err)
		vm, err = e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		pool, err := e.srv.Flow.NodePool(ctx, vm.NodeID)
		require.NoError(t, err)
		v, err := pool.Volume(ctx, flow.VolumeName(vm.ID))
		require.NoError(t, err)
		assert.Equal(t, flow.ImageVolume(fromFile.ID), v.Parent)

		_, err = admin.DeleteImage(ctx, fromFile.ID)
		var p *client.Problem
		require.ErrorAs(t, err, &p)
		assert.Equal(t, 409, p.Status, "the image backs a VM")
		assert.Equal(t, "path.id", p.Field())

		tk, err = e.alice.DeleteVM(ctx, vm.ID)
		succeeded(t, e.alice, tk, err)
	})
	t.Run("from a URL when it is registered, with progress", func(t *testing.T) {
		progress := watchProgress(t, e.srv.Events)
		img, err := admin.CreateImage(ctx, api.ImageBody{Name: "alpine", OSType: "linux", Source: hs.URL + "/alpine.raw", Format: "raw", ClusterID: e.cluster.ID})
		require.NoError(t, err)
		require.NotEmpty(t, img.TaskID)
		assert.Equal(t, model.ImageImporting, img.State)
		tk, err := admin.GetTask(ctx, img.TaskID)
		succeeded(t, admin, tk, err)
		img, err = admin.GetImage(ctx, img.ID)
		require.NoError(t, err)
		assert.Equal(t, model.ImageReady, img.State)
		assert.EqualValues(t, 6, img.SizeMiB)
		assert.Equal(t, 2, bases(img.ID))
		assert.True(t, cached(img.ID), "fetched once into the cache")
		assert.Eventually(t, func() bool { return progress.has("fetching " + hs.URL + "/alpine.raw") }, 5e9, 1e7, "fetch progress on the task")
		assert.True(t, progress.has("importing into node sim2"))
	})
	t.Run("a node fails half-way: the first node's base and the fetched file go", func(t *testing.T) {
		pool2.Fail("Create", virtplane.Errorf(virtplane.ErrResourceExhausted, "injected: pool full"))
		defer pool2.Fail("Create", nil)
		img, err := admin.CreateImage(ctx, api.ImageBody{Name: "big", OSType: "linux", Source: hs.URL + "/big.raw", Format: "raw", ClusterID: e.cluster.ID})
		require.NoError(t, err)
		tk, err := admin.GetTask(ctx, img.TaskID)
		assert.ErrorIs(t, taskFailed(t, admin, tk, err), virtplane.ErrResourceExhausted)
		img, err = admin.GetImage(ctx, img.ID)
		require.NoError(t, err)
		assert.Equal(t, model.ImageFailed, img.State)
		assert.Contains(t, img.Error, "pool full")
		assert.Empty(t, img.Nodes)
		assert.Equal(t, 0, bases(img.ID), "the base on the first node was removed")
		assert.False(t, cached(img.ID), "the fetched file was removed")
		var log client.Page[api.LogLineView]
		require.NoError(t, admin.Do(ctx, "GET", "/v1/tasks/"+img.TaskID+"/log", nil, &log))
		var lines []string
		for _, l := range log.Items {
			lines = append(lines, l.Line)
		}
		assert.Contains(t, lines, "undone: "+"image.remove-base")

		// Once the pool has room, the same import succeeds.
		pool2.Fail("Create", nil)
		_, tk, err = admin.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: e.cluster.ID})
		succeeded(t, admin, tk, err)
		assert.Equal(t, 2, bases(img.ID))
	})
	t.Run("a missing URL", func(t *testing.T) {
		img, err := admin.CreateImage(ctx, api.ImageBody{Name: "gone", OSType: "linux", Source: hs.URL + "/gone.raw", Format: "raw", ClusterID: e.cluster.ID})
		require.NoError(t, err)
		tk, err := admin.GetTask(ctx, img.TaskID)
		assert.ErrorIs(t, taskFailed(t, admin, tk, err), virtplane.ErrNotFound)
		assert.Equal(t, 0, bases(img.ID))
		assert.False(t, cached(img.ID))
	})
	t.Run("bad requests name the field", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			call   func() error
			status int
			field  string
		}{
			{"relative source", func() error {
				_, err := admin.CreateImage(ctx, api.ImageBody{Name: "rel", OSType: "linux", Source: "images/x.qcow2", Format: "qcow2"})
				return err
			}, 422, "body.source"},
			{"ftp source", func() error {
				_, err := admin.CreateImage(ctx, api.ImageBody{Name: "ftp", OSType: "linux", Source: "ftp://example.org/x.qcow2", Format: "qcow2"})
				return err
			}, 422, "body.source"},
			{"no such cluster", func() error {
				_, _, err := admin.ImportImage(ctx, fromFile.ID, api.ImageImportBody{ClusterID: "nope"})
				return err
			}, 404, "body.cluster_id"},
			{"cluster and node", func() error {
				_, _, err := admin.ImportImage(ctx, fromFile.ID, api.ImageImportBody{ClusterID: e.cluster.ID, NodeID: node2.ID})
				return err
			}, 422, "body"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var p *client.Problem
				require.ErrorAs(t, tc.call(), &p)
				assert.Equal(t, tc.status, p.Status, p.Error())
				assert.Equal(t, tc.field, p.Field(), p.Error())
			})
		}
	})
	t.Run("delete leaves nothing", func(t *testing.T) {
		tk, err := e.alice.DeleteVM(ctx, e.aliceVM.ID)
		succeeded(t, e.alice, tk, err)
		var page client.Page[model.Image]
		require.NoError(t, admin.Do(ctx, "GET", "/v1/images", nil, &page))
		require.Len(t, page.Items, 5)
		for _, img := range page.Items {
			tk, err := admin.DeleteImage(ctx, img.ID)
			succeeded(t, admin, tk, err)
			_, err = admin.GetImage(ctx, img.ID)
			assert.ErrorIs(t, err, virtplane.ErrNotFound)
			assert.Equal(t, 0, bases(img.ID), "image %s", img.Name)
			assert.False(t, cached(img.ID))
		}
		// Not even the placeholder base the first VM's node made.
		for _, id := range nodes {
			recs, err := simnode.Records(ctx, st, id)
			require.NoError(t, err)
			assert.Empty(t, recs, "volumes left on node %s", id)
		}
	})
}

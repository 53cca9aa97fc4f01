package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
)

// TestDiskMoveSurvivesDaemonKill: the daemon is killed with SIGKILL while
// it moves a running VM's disk live (the simulated hypervisor takes 5 s
// for the copy: sim_latency); started again, it rolls the move back — the
// VM runs on its old disk, nothing is left on the new storage — and the
// same move then succeeds.
func TestDiskMoveSurvivesDaemonKill(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	conf := filepath.Join(t.TempDir(), "virtplaned.json")
	require.NoError(t, os.WriteFile(conf, []byte(`{"sim_latency": {"CopyDisk": "5s"}}`), 0o644))
	args := "serve --config " + conf + " --data " + data + " --listen 127.0.0.1:0 --node sim --instance kill-move --admin-password admin-password"
	d := startDaemonArgs(t, "", args)
	t.Cleanup(func() { d.kill() })

	token, err := client.New(d.url, "").Login(ctx, "admin", "admin-password")
	require.NoError(t, err)
	c := client.New(d.url, token)
	var clusters client.Page[model.Cluster]
	require.NoError(t, c.Do(ctx, "GET", "/v1/clusters", nil, &clusters))
	require.Len(t, clusters.Items, 1)
	cl := clusters.Items[0]
	other := model.StorageRef{Name: "other", Driver: "lvm", Path: "vgother", Options: map[string]string{"no_activation": "true"}}
	require.NoError(t, c.Do(ctx, "PATCH", "/v1/clusters/"+cl.ID, map[string]any{"storages": []model.StorageRef{
		{Name: "local", Driver: "file", Path: filepath.Join(data, "local"), Default: true}, other}}, &cl))
	require.Len(t, cl.Storages, 2)
	pool, err := c.CreatePool(ctx, api.PoolBody{Name: "p", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "10.31.0.0/24", Gateway: "10.31.0.1"}}})
	require.NoError(t, err)
	var images client.Page[model.Image]
	require.NoError(t, c.Do(ctx, "GET", "/v1/images", nil, &images))
	require.NotEmpty(t, images.Items)
	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "mover", ClusterID: cl.ID, ImageID: images.Items[0].ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 256, DiskGiB: 1}, "")
	require.NoError(t, err)
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	require.Equal(t, "succeeded", tk.State, tk.Error)

	tk, err = c.MoveVMDisk(ctx, vm.ID, "other")
	require.NoError(t, err)
	deadline := time.Now().Add(time.Minute)
	// Into the copy: its step is in the task's log.
	for {
		var log client.Page[struct {
			Line string `json:"line"`
		}]
		require.NoError(t, c.Do(ctx, "GET", "/v1/tasks/"+tk.ID+"/log", nil, &log))
		if slices.ContainsFunc(log.Items, func(l struct {
			Line string `json:"line"`
		}) bool {
			return strings.Contains(l.Line, "mirror the running disk")
		}) {
			break
		}
		require.True(t, time.Now().Before(deadline), "the move did not reach its copy within a minute: %+v", log.Items)
		time.Sleep(10 * time.Millisecond)
	}
	d.kill()
	// The new volume was made before the copy began: there now.
	require.NotEmpty(t, volumesIn(t, data, "other"), "the move's new volume, before the restart")

	d = startDaemonArgs(t, "", args)
	c = client.New(d.url, token)
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	assert.Equal(t, "failed", tk.State, "an interrupted move is rolled back, not run again")
	got, err := c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, "local", got.Storage)
	assert.Equal(t, model.VMRunning, got.State)

	tk, err = c.MoveVMDisk(ctx, vm.ID, "other")
	require.NoError(t, err)
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	assert.Equal(t, "succeeded", tk.State, tk.Error)
	d.stop()
	assert.Empty(t, volumesIn(t, data, "local"), "the old disk after the move")
	vols := volumesIn(t, data, "other")
	assert.Equal(t, []string{flow.VolumeName(vm.ID)}, vols, "the moved disk alone on the new storage")
	// Between the two: the rolled-back move left nothing (checked by the
	// restart's undo: the new volume of the first move was deleted, else
	// the second move would have found it there and failed).
}

// volumesIn lists the volumes a simulated node of the daemon in data
// keeps in the cluster storage storageName (the daemon stopped or killed).
func volumesIn(t *testing.T, data, storageName string) []string {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "virtplane.db"))
	require.NoError(t, err)
	defer st.Close()
	objs, err := st.ListObjects(t.Context(), store.KindSimState, store.ListOptions{})
	require.NoError(t, err)
	var out []string
	for _, o := range objs {
		if strings.HasSuffix(o.Parent, "@"+storageName) && !strings.HasPrefix(o.Name, "image-") {
			out = append(out, o.Name)
		}
	}
	return out
}

func TestSimLatencySetting(t *testing.T) {
	got, err := simLatency(map[string]string{"CopyDisk": "5s", "Start": "250ms"})
	require.NoError(t, err)
	assert.Equal(t, map[string]time.Duration{"CopyDisk": 5 * time.Second, "Start": 250 * time.Millisecond}, got)
	_, err = simLatency(map[string]string{"Frobnicate": "1s"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "no such method")
	_, err = simLatency(map[string]string{"Start": "soon"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "no duration")
}

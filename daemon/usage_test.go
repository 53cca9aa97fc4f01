package daemon_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/node"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func sample(t *testing.T, text, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	require.NotNil(t, m, "no sample %s in\n%s", series, text)
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

// TestUsageMetrics: per-node and per-VM usage of a VM on a simulated node,
// read from its driver's UsageReporter at scrape time, with the node's
// capacity and allocation.
func TestUsageMetrics(t *testing.T) {
	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "usage", DataDir: t.TempDir()})
	require.NoError(t, err)
	c := serveAdmin(t, srv)
	ctx := t.Context()
	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "fra", VirtType: "kvm", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	node, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "n1", Address: "sim", Cores: 4, MemoryMiB: 8192, DiskGiB: 100})
	require.NoError(t, err)
	pool, err := c.CreatePool(ctx, api.PoolBody{Name: "p", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "192.0.2.0/28"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "img", OSType: "linux", Source: "/x.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	vm, tv, err := c.CreateVM(ctx, api.VMCreateBody{Name: "web", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 2, MemoryMiB: 1024, DiskGiB: 10}, "")
	require.NoError(t, err)
	require.NoError(t, c.Task(tv).Wait(ctx))

	nl := `{cluster="fra",node="n1",node_id="` + node.ID + `"}`
	vl := `{cluster="fra",node="n1",vm="` + vm.ID + `",vm_name="web"}`
	text := scrape(t, c.BaseURL())
	assert.Equal(t, 0.0, sample(t, text, "virtplane_usage_scrape_error"))
	assert.Equal(t, 1.0, sample(t, text, "virtplane_node_usage_up"+nl))
	assert.Equal(t, 4.0, sample(t, text, "virtplane_node_cores"+nl))
	assert.Equal(t, 2.0, sample(t, text, "virtplane_node_vcpus_allocated"+nl))
	assert.Equal(t, float64(1024<<20), sample(t, text, "virtplane_node_memory_allocated_bytes"+nl))
	assert.Equal(t, float64(1024<<20), sample(t, text, "virtplane_vm_memory_used_bytes"+vl), "the simulated VM runs with all its memory")
	assert.Equal(t, 1.0, sample(t, text, `virtplane_vms{cluster="fra",state="running"}`))
	assert.Equal(t, 4.0, sample(t, text, `virtplane_cluster_overcommit_limit{cluster="fra",resource="cpu"}`))
	assert.Equal(t, 1.0, sample(t, text, `virtplane_node_state{cluster="fra",node="n1",node_id="`+node.ID+`",state="active"}`))
	cpu1 := sample(t, text, "virtplane_vm_cpu_seconds_total"+vl)
	time.Sleep(20 * time.Millisecond)
	text = scrape(t, c.BaseURL())
	cpu2 := sample(t, text, "virtplane_vm_cpu_seconds_total"+vl)
	assert.Greater(t, cpu2, cpu1, "a running VM's CPU time grows")
	assert.Equal(t, cpu2, sample(t, text, "virtplane_node_cpu_seconds_total"+nl), "the node sums its VMs")

	// A stopped VM has no memory in use; its size is still allocated.
	stop, err := c.StopVM(ctx, vm.ID)
	require.NoError(t, err)
	require.NoError(t, c.Task(stop).Wait(ctx))
	text = scrape(t, c.BaseURL())
	assert.Equal(t, 0.0, sample(t, text, "virtplane_node_memory_used_bytes"+nl))
	assert.Equal(t, 2.0, sample(t, text, "virtplane_node_vcpus_allocated"+nl))
	assert.Equal(t, 1.0, sample(t, text, `virtplane_vms{cluster="fra",state="stopped"}`))
}

// TestRequestMetricsCodes: API requests are counted by the status they got
// (they were all code 0: the handler's status went to a copy of the context).
func TestRequestMetricsCodes(t *testing.T) {
	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "codes", DataDir: t.TempDir()})
	require.NoError(t, err)
	c := serveAdmin(t, srv)
	_, err = c.ListClusters(t.Context(), client.ListOptions{})
	require.NoError(t, err)
	_, err = c.GetVM(t.Context(), "no-such-vm")
	require.Error(t, err)
	text := scrape(t, c.BaseURL())
	assert.Equal(t, 1.0, sample(t, text, `virtplane_api_request_duration_seconds_count{code="200",operation="listClusters"}`))
	assert.Equal(t, 1.0, sample(t, text, `virtplane_api_request_duration_seconds_count{code="404",operation="getVM"}`))
}

// TestUsageScrapeDoesNotDialRemoteNodes: a node of a kind that dials
// another machine (node.Kind.Remote, as ssh:// is) is reported by a
// scrape only once it is open; the scrape itself opens nothing and shows
// the node down.
func TestUsageScrapeDoesNotDialRemoteNodes(t *testing.T) {
	var opens atomic.Int32
	far := node.Kind{
		Name: "far", Forms: "far://NAME", Remote: true,
		Parse: func(_, raw string) (any, string, bool, error) { return nil, "", strings.HasPrefix(raw, "far://"), nil },
		Prepare: func(context.Context, string, node.Address, string, node.Credentials) (node.Facts, error) {
			return node.Facts{Cores: 2, MemoryMiB: 2048, DiskGiB: 20, Hostname: "far"}, nil
		},
		Open: func(context.Context, node.Target) (*node.Backend, error) {
			opens.Add(1)
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "far away")
		},
	}
	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "usage", DataDir: t.TempDir(), NodeKinds: []node.Kind{far}})
	require.NoError(t, err)
	c := serveAdmin(t, srv)
	ctx := t.Context()
	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "fra", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	n, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "far1", Address: "far://one"})
	require.NoError(t, err)
	before := opens.Load()
	text := scrape(t, c.BaseURL())
	assert.Equal(t, 0.0, sample(t, text, `virtplane_node_usage_up{cluster="fra",node="far1",node_id="`+n.ID+`"}`))
	assert.Equal(t, before, opens.Load(), "the scrape dialed the remote node")
}

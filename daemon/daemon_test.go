package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/network/ipam"
)

// env is a running daemon with an admin and two users.
type env struct {
	srv          *daemon.Server
	url          string
	admin        *client.Client
	alice, bob   *client.Client
	aliceID      string
	bobID        string
	cluster      model.Cluster
	pool         model.IPPool
	image        model.Image
	node         model.Node
	aliceVM      model.VM
	aliceTask    api.TaskView
	aliceTokenID string
	template     model.DomainTemplate
}

func newEnv(t *testing.T, st store.Store) *env {
	t.Helper()
	srv, err := daemon.New(daemon.Config{Store: st, Instance: "test", DataDir: t.TempDir()})
	require.NoError(t, err)
	return newEnvOn(t, srv)
}

// newEnvOn is newEnv on a daemon of the test's own configuration.
func newEnvOn(t *testing.T, srv *daemon.Server) *env {
	t.Helper()
	ctx := t.Context()
	url := serve(t, srv)
	token, err := srv.Bootstrap(ctx, "admin-password")
	require.NoError(t, err)
	require.NotEmpty(t, token)
	again, err := srv.Bootstrap(ctx, "")
	require.NoError(t, err)
	assert.Empty(t, again, "bootstrap runs once")

	e := &env{srv: srv, url: url, admin: client.New(url, token)}
	a, err := e.admin.CreateUser(ctx, "alice", "alice-password", model.RoleUser)
	require.NoError(t, err)
	b, err := e.admin.CreateUser(ctx, "bob", "bob-password", model.RoleUser)
	require.NoError(t, err)
	e.aliceID, e.bobID = a.ID, b.ID
	at, err := client.New(url, "").Login(ctx, "alice", "alice-password")
	require.NoError(t, err)
	bt, err := client.New(url, "").Login(ctx, "bob", "bob-password")
	require.NoError(t, err)
	e.alice, e.bob = client.New(url, at), client.New(url, bt)

	e.cluster, err = e.admin.CreateCluster(ctx, api.ClusterBody{Name: "fra1", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	e.node, err = e.admin.AddNode(ctx, api.NodeBody{ClusterID: e.cluster.ID, Name: "sim1", Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100})
	require.NoError(t, err)
	e.pool, err = e.admin.CreatePool(ctx, api.PoolBody{Name: "public", ClusterIDs: []string{e.cluster.ID}, Blocks: []api.BlockBody{{Range: "192.0.2.0/24", Gateway: "192.0.2.1"}}})
	require.NoError(t, err)
	e.image, err = e.admin.CreateImage(ctx, api.ImageBody{Name: "debian", OSType: "linux", Source: "/var/lib/images/debian.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	e.template, err = e.admin.CreateTemplate(ctx, api.TemplateBody{Name: "q35", Machine: "q35", Video: "vga"})
	require.NoError(t, err)
	e.aliceVM, e.aliceTask, err = e.alice.CreateVM(ctx, e.vmBody("web"), "alice-order-1")
	require.NoError(t, err)
	var tok struct {
		Info model.Token `json:"info"`
	}
	require.NoError(t, e.alice.Do(ctx, "POST", "/v1/tokens", map[string]string{"name": "ci"}, &tok))
	e.aliceTokenID = tok.Info.ID
	return e
}

func (e *env) vmBody(name string) api.VMCreateBody {
	return api.VMCreateBody{Name: name, ClusterID: e.cluster.ID, ImageID: e.image.ID, PoolID: e.pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5}
}

// rbacCase is one call bob makes. Denied calls must fail with 403 or 404;
// allowed ones must not show any of alice's IDs.
type rbacCase struct {
	op     string
	method string
	path   string
	body   any
	denied bool
}

func (e *env) rbacCases() []rbacCase {
	vm, task := e.aliceVM.ID, e.aliceTask.ID
	mine := e.vmBody("bobs")
	forAlice := e.vmBody("stolen")
	forAlice.Owner = e.aliceID
	return []rbacCase{
		{"login", "POST", "/v1/login", map[string]string{"name": "alice", "password": "wrong-password"}, true},
		{"me", "GET", "/v1/me", nil, false},
		{"listUsers", "GET", "/v1/users", nil, true},
		{"createUser", "POST", "/v1/users", map[string]string{"name": "mallory", "password": "mallory-pass", "role": "admin"}, true},
		{"getUser", "GET", "/v1/users/" + e.aliceID, nil, true},
		{"deleteUser", "DELETE", "/v1/users/" + e.aliceID, nil, true},
		{"getQuota", "GET", "/v1/users/" + e.aliceID + "/quota", nil, true},
		{"getQuota", "GET", "/v1/users/" + e.bobID + "/quota", nil, false},
		{"setQuota", "PUT", "/v1/users/" + e.bobID + "/quota", map[string]int{"vms": 100}, true},
		{"patchQuota", "PATCH", "/v1/users/" + e.aliceID + "/quota", map[string]int{"vms": 0}, true},
		{"listAudit", "GET", "/v1/audit", nil, true},
		{"listTokens", "GET", "/v1/tokens", nil, false},
		{"createToken", "POST", "/v1/tokens", map[string]string{"name": "bobs"}, false},
		{"deleteToken", "DELETE", "/v1/tokens/" + e.aliceTokenID, nil, true},
		{"listClusters", "GET", "/v1/clusters", nil, false},
		{"listStorageDrivers", "GET", "/v1/storage-drivers", nil, true},
		{"getClusterStorageUsage", "GET", "/v1/clusters/" + e.cluster.ID + "/storage-usage", nil, true},
		{"moveVMDisk", "POST", "/v1/vms/" + e.aliceVM.ID + "/disk/move", map[string]string{"storage": "x"}, true},
		{"backupVM", "POST", "/v1/vms/" + e.aliceVM.ID + "/backups", map[string]string{"storage": "x"}, true},
		{"imageFromVM", "POST", "/v1/vms/" + e.aliceVM.ID + "/image", map[string]string{"name": "tpl"}, true},
		{"cloneVM", "POST", "/v1/vms/" + e.aliceVM.ID + "/clone", map[string]string{"name": "twin"}, true},
		{"attachVMDisk", "POST", "/v1/vms/" + e.aliceVM.ID + "/disks", map[string]int{"size_gib": 1}, true},
		{"detachVMDisk", "DELETE", "/v1/vms/" + e.aliceVM.ID + "/disks/vdb", nil, true},
		{"resizeVMDisk", "POST", "/v1/vms/" + e.aliceVM.ID + "/disks/vdb/resize", map[string]int{"size_gib": 2}, true},
		{"listBackups", "GET", "/v1/vms/" + e.aliceVM.ID + "/backups", nil, true},
		{"restoreBackup", "POST", "/v1/vms/" + e.aliceVM.ID + "/backups/x/restore", nil, true},
		{"deleteBackup", "DELETE", "/v1/vms/" + e.aliceVM.ID + "/backups/x", nil, true},
		{"getCluster", "GET", "/v1/clusters/" + e.cluster.ID, nil, false},
		{"createCluster", "POST", "/v1/clusters", api.ClusterBody{Name: "evil", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"}, true},
		{"updateCluster", "PUT", "/v1/clusters/" + e.cluster.ID, api.ClusterBody{Name: "fra1", VirtType: "kvm", Strategy: "sequential", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"}, true},
		{"patchCluster", "PATCH", "/v1/clusters/" + e.cluster.ID, map[string]string{"strategy": "sequential"}, true},
		{"deleteCluster", "DELETE", "/v1/clusters/" + e.cluster.ID, nil, true},
		{"listNodes", "GET", "/v1/nodes", nil, true},
		{"getNode", "GET", "/v1/nodes/" + e.node.ID, nil, true},
		{"addNode", "POST", "/v1/nodes", api.NodeBody{ClusterID: e.cluster.ID, Name: "evil", Address: "sim", Cores: 1, MemoryMiB: 1024, DiskGiB: 1}, true},
		{"setNodeMaintenance", "POST", "/v1/nodes/" + e.node.ID + "/maintenance", map[string]bool{"enabled": true}, true},
		{"removeNode", "DELETE", "/v1/nodes/" + e.node.ID, nil, true},
		{"setNodeVTEP", "PUT", "/v1/nodes/" + e.node.ID + "/vtep", map[string]string{"vtep_address": "10.66.0.1"}, true},
		{"syncClusterFlood", "POST", "/v1/clusters/" + e.cluster.ID + "/vxlan-sync", nil, true},
		{"listPools", "GET", "/v1/ippools", nil, true},
		{"getPool", "GET", "/v1/ippools/" + e.pool.ID, nil, true},
		{"createPool", "POST", "/v1/ippools", api.PoolBody{Name: "evil", ClusterIDs: []string{}}, true},
		{"addPoolBlock", "POST", "/v1/ippools/" + e.pool.ID + "/blocks", api.BlockBody{Range: "198.51.100.0/24"}, true},
		{"removePoolBlock", "DELETE", "/v1/ippools/" + e.pool.ID + "/blocks/" + e.pool.Blocks[0].ID, nil, true},
		{"deletePool", "DELETE", "/v1/ippools/" + e.pool.ID, nil, true},
		{"checkPoolDNSBL", "POST", "/v1/ippools/" + e.pool.ID + "/dnsbl-check", api.DNSBLCheckBody{ExcludeListed: true}, true},
		{"listImages", "GET", "/v1/images", nil, false},
		{"getImage", "GET", "/v1/images/" + e.image.ID, nil, false},
		{"createImage", "POST", "/v1/images", api.ImageBody{Name: "evil", OSType: "linux", Source: "/x", Format: "qcow2"}, true},
		{"importImage", "POST", "/v1/images/" + e.image.ID + "/import", api.ImageImportBody{ClusterID: e.cluster.ID}, true},
		{"deleteImage", "DELETE", "/v1/images/" + e.image.ID, nil, true},
		{"listVMs", "GET", "/v1/vms", nil, false},
		{"listVMs", "GET", "/v1/vms?owner=" + e.aliceID, nil, false},
		{"createVM", "POST", "/v1/vms", mine, false},
		{"createVM", "POST", "/v1/vms", forAlice, true},
		{"getVM", "GET", "/v1/vms/" + vm, nil, true},
		{"deleteVM", "DELETE", "/v1/vms/" + vm, nil, true},
		{"startVM", "POST", "/v1/vms/" + vm + "/start", nil, true},
		{"stopVM", "POST", "/v1/vms/" + vm + "/stop", nil, true},
		{"rebootVM", "POST", "/v1/vms/" + vm + "/reboot", nil, true},
		{"resizeVM", "POST", "/v1/vms/" + vm + "/resize", map[string]int{"cpus": 4}, true},
		{"setVMLimits", "PUT", "/v1/vms/" + vm + "/limits", model.Limits{NetMbit: 1}, true},
		{"createSnapshot", "POST", "/v1/vms/" + vm + "/snapshots", map[string]string{"name": "s1"}, true},
		{"listSnapshots", "GET", "/v1/vms/" + vm + "/snapshots", nil, true},
		{"deleteSnapshot", "DELETE", "/v1/vms/" + vm + "/snapshots/s1", nil, true},
		{"rescueVM", "POST", "/v1/vms/" + vm + "/rescue", map[string]bool{"enabled": true}, true},
		{"migrateVM", "POST", "/v1/vms/" + vm + "/migrate", map[string]string{}, true},
		{"getVMConsole", "GET", "/v1/vms/" + vm + "/console", nil, true},
		{"createConsoleTicket", "POST", "/v1/vms/" + vm + "/console", nil, true},
		{"suspendVM", "POST", "/v1/vms/" + vm + "/suspend", nil, true},
		{"resumeVM", "POST", "/v1/vms/" + vm + "/resume", nil, true},
		{"resetVM", "POST", "/v1/vms/" + vm + "/reset", nil, true},
		{"shutdownVM", "POST", "/v1/vms/" + vm + "/shutdown", map[string]int{"timeout_sec": 5}, true},
		{"revertSnapshot", "POST", "/v1/vms/" + vm + "/snapshots/s1/revert", nil, true},
		{"guestInterfaces", "GET", "/v1/vms/" + vm + "/guest/interfaces", nil, true},
		{"guestExec", "POST", "/v1/vms/" + vm + "/guest/exec", map[string]any{"argv": []string{"id"}}, true},
		{"setGuestPassword", "POST", "/v1/vms/" + vm + "/guest/password", map[string]string{"user": "root", "password": "x"}, true},
		{"listTemplates", "GET", "/v1/templates", nil, false},
		{"getTemplate", "GET", "/v1/templates/" + e.template.ID, nil, false},
		{"createTemplate", "POST", "/v1/templates", api.TemplateBody{Name: "evil"}, true},
		{"updateTemplate", "PUT", "/v1/templates/" + e.template.ID, api.TemplateBody{Name: "evil"}, true},
		{"deleteTemplate", "DELETE", "/v1/templates/" + e.template.ID, nil, true},
		{"planRebalance", "POST", "/v1/clusters/" + e.cluster.ID + "/rebalance-plan", map[string]any{}, true},
		{"rebalanceCluster", "POST", "/v1/clusters/" + e.cluster.ID + "/rebalance", map[string]any{}, true},
		{"setClusterRescue", "PUT", "/v1/clusters/" + e.cluster.ID + "/rescue", map[string]string{"kernel": "/evil"}, true},
		{"setClusterTemplate", "PUT", "/v1/clusters/" + e.cluster.ID + "/template", map[string]string{"template_id": ""}, true},
		{"listTasks", "GET", "/v1/tasks", nil, false},
		{"listTasks", "GET", "/v1/tasks?target=vm/" + vm, nil, false},
		{"getTask", "GET", "/v1/tasks/" + task, nil, true},
		{"getTaskLog", "GET", "/v1/tasks/" + task + "/log", nil, true},
		{"cancelTask", "POST", "/v1/tasks/" + task + "/cancel", nil, true},
	}
}

func operationIDs(srv *daemon.Server) []string {
	var ids []string
	for _, item := range srv.API.OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Post, item.Put, item.Patch, item.Delete} {
			if op != nil {
				ids = append(ids, op.OperationID)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

func TestRBACEveryEndpoint(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	cases := append(e.rbacCases(), e.scriptRBACCases(t)...)

	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.op] = true
	}
	for _, id := range operationIDs(e.srv) {
		assert.True(t, covered[id], "operation %s has no RBAC case", id)
	}

	aliceIDs := []string{e.aliceVM.ID, e.aliceTask.ID, e.aliceTokenID}
	for _, c := range cases {
		t.Run(c.op+" "+c.method+" "+c.path, func(t *testing.T) {
			var raw json.RawMessage
			err := e.bob.Do(ctx, c.method, c.path, c.body, &raw)
			if c.denied {
				require.Error(t, err)
				var p *client.Problem
				require.ErrorAs(t, err, &p)
				assert.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}, p.Status, p.Error())
				return
			}
			require.NoError(t, err)
			for _, id := range aliceIDs {
				assert.NotContains(t, string(raw), id, "bob sees alice's object")
			}
		})
	}

	// Nothing of alice's changed, and the admin still sees it.
	vm, err := e.alice.GetVM(ctx, e.aliceVM.ID)
	require.NoError(t, err)
	assert.Equal(t, "web", vm.Name)
	task, err := e.alice.GetTask(ctx, e.aliceTask.ID)
	require.NoError(t, err)
	assert.False(t, task.Cancel)
	var toks client.Page[model.Token]
	require.NoError(t, e.alice.Do(ctx, "GET", "/v1/tokens", nil, &toks))
	assert.Len(t, toks.Items, 2, "login token and ci token")
	_, err = e.admin.GetVM(ctx, e.aliceVM.ID)
	require.NoError(t, err)
	require.NoError(t, e.admin.Do(ctx, "GET", "/v1/clusters/"+e.cluster.ID, nil, nil))
	node := model.Node{}
	require.NoError(t, e.admin.Do(ctx, "GET", "/v1/nodes/"+e.node.ID, nil, &node))
	assert.False(t, node.Maintenance)
	var alicesTasks client.Page[api.TaskView]
	require.NoError(t, e.alice.Do(ctx, "GET", "/v1/tasks", nil, &alicesTasks))
	for _, tk := range alicesTasks.Items {
		assert.Equal(t, e.aliceID, tk.Owner)
	}
	// Unauthenticated calls fail.
	err = client.New(e.url, "").Do(ctx, "GET", "/v1/vms", nil, nil)
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
	err = client.New(e.url, "vpt_forged").Do(ctx, "GET", "/v1/vms", nil, nil)
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
}

func TestEventsAreFiltered(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	dial := func(c *client.Client, token string) *websocket.Conn {
		conn, _, err := websocket.Dial(ctx, strings.Replace(e.url, "http", "ws", 1)+"/v1/events?token="+token, nil)
		require.NoError(t, err)
		t.Cleanup(func() { conn.CloseNow() })
		return conn
	}
	bobToken := e.loginToken(t, "bob", "bob-password")
	aliceToken := e.loginToken(t, "alice", "alice-password")
	base := e.srv.Events.Subscribers() // the daemon's own (notifications)
	bobConn := dial(e.bob, bobToken)
	aliceConn := dial(e.alice, aliceToken)
	require.Eventually(t, func() bool { return e.srv.Events.Subscribers() == base+2 }, 5*time.Second, 10*time.Millisecond)

	vm, task, err := e.alice.CreateVM(ctx, e.vmBody("evented"), "")
	require.NoError(t, err)
	_, err = e.alice.WaitTask(ctx, task.ID)
	require.NoError(t, err)
	bobVM, _, err := e.bob.CreateVM(ctx, e.vmBody("bobs"), "")
	require.NoError(t, err)

	// Alice sees her VM's events; bob's stream carries only bob's objects.
	sawAlice := false
	for !sawAlice {
		var ev events.Event
		require.NoError(t, wsjson.Read(ctx, aliceConn, &ev))
		assert.Equal(t, e.aliceID, ev.Owner)
		sawAlice = ev.ID == vm.ID || ev.Target == "vm/"+vm.ID
	}
	for {
		var ev events.Event
		require.NoError(t, wsjson.Read(ctx, bobConn, &ev))
		assert.Equal(t, e.bobID, ev.Owner, "bob got an event of %s", ev.Owner)
		if ev.ID == bobVM.ID {
			break
		}
	}
	_, _, err = websocket.Dial(ctx, strings.Replace(e.url, "http", "ws", 1)+"/v1/events?token=vpt_nope", nil)
	assert.Error(t, err)
}

func (e *env) loginToken(t *testing.T, name, password string) string {
	tok, err := client.New(e.url, "").Login(t.Context(), name, password)
	require.NoError(t, err)
	return tok
}

func TestProblemDetailsNameTheField(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	cases := []struct {
		name   string
		body   api.VMCreateBody
		status int
		field  string
	}{
		{"bad name", func() api.VMCreateBody { b := e.vmBody("Bad_Name"); return b }(), 422, "body.name"},
		{"no such cluster", func() api.VMCreateBody { b := e.vmBody("x1"); b.ClusterID = "nope"; return b }(), 404, "body.cluster_id"},
		{"no such image", func() api.VMCreateBody { b := e.vmBody("x2"); b.ImageID = "nope"; return b }(), 404, "body.image_id"},
		{"no such pool", func() api.VMCreateBody { b := e.vmBody("x3"); b.PoolID = "nope"; return b }(), 404, "body.pool_id"},
		{"zero cpus", func() api.VMCreateBody { b := e.vmBody("x4"); b.CPUs = 0; return b }(), 422, "body.cpus"},
		{"taken name", e.vmBody("web"), 409, "body.name"},
		{"bad ssh key", func() api.VMCreateBody { b := e.vmBody("x5"); b.SSHKeys = []string{"hello"}; return b }(), 422, "body.ssh_keys[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.alice.CreateVM(ctx, tc.body, "")
			var p *client.Problem
			require.ErrorAs(t, err, &p)
			assert.Equal(t, tc.status, p.Status, p.Error())
			assert.Equal(t, tc.field, p.Field(), p.Error())
		})
	}
}

func TestIdempotentCreate(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	vm1, t1, err := e.alice.CreateVM(ctx, e.vmBody("shop-1"), "order-77")
	require.NoError(t, err)
	vm2, t2, err := e.alice.CreateVM(ctx, e.vmBody("shop-1"), "order-77")
	require.NoError(t, err)
	assert.Equal(t, vm1.ID, vm2.ID)
	assert.Equal(t, t1.ID, t2.ID)
	// The same key of another user is another request.
	vm3, _, err := e.bob.CreateVM(ctx, e.vmBody("shop-1"), "order-77")
	require.NoError(t, err)
	assert.NotEqual(t, vm1.ID, vm3.ID)
}

func TestDocsAndOpenAPI(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	for _, path := range []string{"/docs", "/openapi.json", "/metrics"} {
		resp, err := http.Get(e.url + path)
		require.NoError(t, err)
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, path)
		switch path {
		case "/docs":
			assert.Contains(t, b.String(), "/v1/vms/{id}/snapshots")
			assert.NotContains(t, b.String(), "<script", "no scripts, no CDN")
			assert.NotContains(t, b.String(), "https://unpkg")
		case "/openapi.json":
			assert.Contains(t, b.String(), `"openapi":"3.1`)
		case "/metrics":
			assert.Contains(t, b.String(), "virtplane_objects")
		}
	}
}

// TestVMLifecycleOnSimulatedNode runs the create flow through the API on a
// simulated node, on SQLite and on PostgreSQL: the VM runs with an address
// from the pool; stop, snapshot, delete; nothing is left behind.
func TestVMLifecycleOnSimulatedNode(t *testing.T) {
	for name, open := range map[string]func(testing.TB) store.Store{
		"sqlite":   func(t testing.TB) store.Store { return dbtest.SQLite(t) },
		"postgres": func(t testing.TB) store.Store { return dbtest.Postgres(t) },
	} {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			e := newEnv(t, st)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			created, err := e.alice.WaitTask(ctx, e.aliceTask.ID)
			require.NoError(t, err)
			require.NoError(t, client.TaskError(created))
			vm, err := e.alice.GetVM(ctx, e.aliceVM.ID)
			require.NoError(t, err)
			assert.Equal(t, model.VMRunning, vm.State)
			assert.Equal(t, e.node.ID, vm.NodeID)
			require.Len(t, vm.Addresses, 1)
			assert.True(t, netip.MustParsePrefix("192.0.2.0/24").Contains(netip.MustParseAddr(vm.Addresses[0])))
			assert.NotEqual(t, "192.0.2.1", vm.Addresses[0], "the gateway is never handed out")
			assert.Equal(t, flow.VolumeName(vm.ID), vm.Volume, "a linked clone of the image")

			for _, step := range []func() (api.TaskView, error){
				func() (api.TaskView, error) { return e.alice.VMAction(ctx, vm.ID, "stop") },
				func() (api.TaskView, error) { return e.alice.Snapshot(ctx, vm.ID, "before-upgrade") },
				func() (api.TaskView, error) { return e.alice.VMAction(ctx, vm.ID, "start") },
			} {
				tk, err := step()
				require.NoError(t, err)
				tk, err = e.alice.WaitTask(ctx, tk.ID)
				require.NoError(t, err)
				require.NoError(t, client.TaskError(tk))
			}
			vm, err = e.alice.GetVM(ctx, vm.ID)
			require.NoError(t, err)
			assert.Equal(t, model.VMRunning, vm.State)
			require.Len(t, vm.Snapshots, 1)
			assert.Equal(t, "before-upgrade", vm.Snapshots[0].Name)

			del, err := e.alice.DeleteVM(ctx, vm.ID)
			require.NoError(t, err)
			del, err = e.alice.WaitTask(ctx, del.ID)
			require.NoError(t, err)
			require.NoError(t, client.TaskError(del))
			_, err = e.alice.GetVM(ctx, vm.ID)
			assert.ErrorIs(t, err, virtplane.ErrNotFound)

			// Nothing left: no address, no domain on the node.
			allocs, err := e.srv.IPAM.LookupOwner(ctx, ipam.Owner{VM: vm.ID})
			require.NoError(t, err)
			assert.Empty(t, allocs)
			// Only the image's base volume stays on the node: no domain, no VM disk.
			sims, err := st.ListObjects(ctx, store.KindSimState, store.ListOptions{})
			require.NoError(t, err)
			require.Len(t, sims, 1)
			assert.Equal(t, flow.ImageVolume(e.image.ID), sims[0].Name)
			var log client.Page[api.LogLineView]
			require.NoError(t, e.alice.Do(ctx, "GET", "/v1/tasks/"+e.aliceTask.ID+"/log", nil, &log))
			assert.NotEmpty(t, log.Items)
		})
	}
}

// TestCreateRollsBackWhenThePoolIsFull: the second VM finds no address; its
// reservation is released and the VM recorded as failed.
func TestCreateRollsBackWhenThePoolIsFull(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tiny, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "tiny", ClusterIDs: []string{e.cluster.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.7/32"}}})
	require.NoError(t, err)
	b := e.vmBody("one")
	b.PoolID = tiny.ID
	_, t1, err := e.alice.CreateVM(ctx, b, "")
	require.NoError(t, err)
	t1, err = e.alice.WaitTask(ctx, t1.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(t1))
	b.Name = "two"
	vm2, t2, err := e.alice.CreateVM(ctx, b, "")
	require.NoError(t, err)
	t2, err = e.alice.WaitTask(ctx, t2.ID)
	require.NoError(t, err)
	assert.Equal(t, "failed", t2.State)
	assert.ErrorIs(t, client.TaskError(t2), virtplane.ErrResourceExhausted)
	vm2, err = e.alice.GetVM(ctx, vm2.ID)
	require.NoError(t, err)
	assert.Equal(t, model.VMFailed, vm2.State)
	doms, err := e.srv.Flow.Domains(ctx, e.node.ID)
	require.NoError(t, err)
	assert.Len(t, doms, 2, "alice's web VM and the first one; none for the failed create")
}

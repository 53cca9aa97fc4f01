package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
)

// specOp is an operation of the daemon's OpenAPI document.
type specOp struct {
	id, method, path string
	re               *regexp.Regexp
}

func documentOps(doc *huma.OpenAPI) []specOp {
	var out []specOp
	for path, item := range doc.Paths {
		for method, op := range map[string]*huma.Operation{"GET": item.Get, "POST": item.Post, "PUT": item.Put, "PATCH": item.Patch, "DELETE": item.Delete} {
			if op == nil {
				continue
			}
			re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(path), `[^/]+`) + "$")
			out = append(out, specOp{op.OperationID, method, path, re})
		}
	}
	return out
}

func newDaemon(t *testing.T) *daemon.Server {
	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "client-test", DataDir: t.TempDir()})
	require.NoError(t, err)
	return srv
}

// TestClientCoversOpenAPI is what keeps the client in step with the API:
// every operation of the daemon's document has a row in client.Operations
// with its method and path, every row names a Client method, and no row
// names an operation the daemon does not have.
func TestClientCoversOpenAPI(t *testing.T) {
	missing, wrong := compareWithDocument(client.Operations(), documentOps(newDaemon(t).API.OpenAPI()))
	for _, m := range missing {
		t.Errorf("operation %s is not in client.Operations (daemon/client/ops.go): add a row and a Client method", m)
	}
	for _, w := range wrong {
		t.Error(w)
	}
}

// compareWithDocument returns the document's operations the table lacks
// and what is wrong with the table's rows.
func compareWithDocument(table []client.Op, doc []specOp) (missing, wrong []string) {
	rows := map[string]client.Op{}
	ct := reflect.TypeOf(&client.Client{})
	for _, r := range table {
		if _, dup := rows[r.ID]; dup {
			wrong = append(wrong, "operation "+r.ID+" has two rows")
		}
		rows[r.ID] = r
		if _, ok := ct.MethodByName(r.Func); !ok {
			wrong = append(wrong, "row "+r.ID+" names Client."+r.Func+", which does not exist")
		}
	}
	seen := map[string]bool{}
	for _, op := range doc {
		seen[op.id] = true
		r, ok := rows[op.id]
		if !ok {
			missing = append(missing, op.id+" ("+op.method+" "+op.path+")")
			continue
		}
		if r.Method != op.method || r.Path != op.path {
			wrong = append(wrong, "row "+r.ID+" says "+r.Method+" "+r.Path+", the daemon "+op.method+" "+op.path)
		}
	}
	for id := range rows {
		if !seen[id] {
			wrong = append(wrong, "row "+id+" names an operation the daemon does not have")
		}
	}
	return missing, wrong
}

// TestAgreementCheckFails shows the check above can fail: a document with
// an operation the table lacks, and a row whose path moved.
func TestAgreementCheckFails(t *testing.T) {
	doc := documentOps(newDaemon(t).API.OpenAPI())
	doc = append(doc, specOp{id: "frobnicateVM", method: "POST", path: "/v1/vms/{id}/frobnicate"})
	table := client.Operations()
	for i := range table {
		if table[i].ID == "getVM" {
			table[i].Path = "/v1/machines/{id}"
		}
	}
	table = append(table, client.Op{ID: "ghost", Method: "GET", Path: "/v1/ghost", Func: "Ghost"})
	missing, wrong := compareWithDocument(table, doc)
	assert.Equal(t, []string{"frobnicateVM (POST /v1/vms/{id}/frobnicate)"}, missing)
	assert.Contains(t, wrong, "row getVM says GET /v1/machines/{id}, the daemon GET /v1/vms/{id}")
	assert.Contains(t, wrong, "row ghost names Client.Ghost, which does not exist")
	assert.Contains(t, wrong, "row ghost names an operation the daemon does not have")
}

// TestEveryMethodCallsItsOperation calls each row's Client method with
// made-up arguments against a server that names the operation each request
// matches in the daemon's document: a method that calls another operation
// than its row says, or none, fails.
func TestEveryMethodCallsItsOperation(t *testing.T) {
	ops := documentOps(newDaemon(t).API.OpenAPI())
	var mu sync.Mutex
	var hits []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := "unknown " + r.Method + " " + r.URL.Path
		for _, op := range ops {
			if op.method == r.Method && op.re.MatchString(r.URL.Path) {
				id = op.id
			}
		}
		mu.Lock()
		hits = append(hits, id)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer hs.Close()
	c := client.New(hs.URL, "vpt_test")
	cv := reflect.ValueOf(c)
	for _, row := range client.Operations() {
		t.Run(row.ID, func(t *testing.T) {
			m := cv.MethodByName(row.Func)
			require.True(t, m.IsValid(), "Client.%s", row.Func)
			args := make([]reflect.Value, m.Type().NumIn())
			for i := range args {
				args[i] = madeUp(t.Context(), m.Type().In(i), i)
			}
			mu.Lock()
			hits = nil
			mu.Unlock()
			outs := m.Call(args)
			if last := outs[len(outs)-1]; !last.IsNil() {
				t.Fatalf("Client.%s: %v", row.Func, last.Interface())
			}
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, []string{row.ID}, hits, "Client.%s", row.Func)
		})
	}
}

// madeUp returns an argument of type ty: the context, non-empty strings
// (path parameters must not be empty), ones and zero structs.
func madeUp(ctx context.Context, ty reflect.Type, i int) reflect.Value {
	if ty == reflect.TypeOf((*context.Context)(nil)).Elem() {
		return reflect.ValueOf(ctx)
	}
	v := reflect.New(ty).Elem()
	switch ty.Kind() {
	case reflect.String:
		v.SetString("p" + string(rune('0'+i)))
		if ty == reflect.TypeOf(model.Role("")) {
			v.SetString("user")
		}
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Bool:
		v.SetBool(true)
	}
	return v
}

func TestProblemsAreTypedErrors(t *testing.T) {
	srv := newDaemon(t)
	url, token := serve(t, srv)
	c := client.New(url, token)
	ctx := t.Context()

	_, err := c.GetVM(ctx, "no-such-vm")
	require.Error(t, err)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	assert.Equal(t, "path.id", p.Field())

	_, err = c.CreateCluster(ctx, api.ClusterBody{Name: "Not A Name", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	require.ErrorAs(t, err, &p)
	assert.Equal(t, "body.name", p.Field())

	_, err = client.New(url, "vpt_wrong").Me(ctx)
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)

	// A user may not list nodes.
	_, err = c.CreateUser(ctx, "carol", "carol-password", model.RoleUser)
	require.NoError(t, err)
	carol, err := c.Login(ctx, "carol", "carol-password")
	require.NoError(t, err)
	_, err = c.WithToken(carol).ListNodes(ctx, client.NodeListOptions{})
	assert.ErrorIs(t, err, virtplane.ErrPermissionDenied)

	_, err = c.CreateCluster(ctx, clusterBody("c1"))
	require.NoError(t, err)
	_, err = c.CreateCluster(ctx, clusterBody("c1"))
	assert.ErrorIs(t, err, virtplane.ErrAlreadyExists)
}

func clusterBody(name string) api.ClusterBody {
	return api.ClusterBody{Name: name, VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"}
}

func serve(t *testing.T, srv *daemon.Server) (url, token string) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); stop(); <-done; _ = srv.Close() })
	token, err := srv.Bootstrap(t.Context(), "admin-password")
	require.NoError(t, err)
	return hs.URL, token
}

// flaky answers 503 to the first n requests, then passes them on.
func flaky(n int32, next http.Handler) (http.Handler, *atomic.Int32) {
	var seen atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"title":"Service Unavailable","status":503,"detail":"try again"}`))
			return
		}
		next.ServeHTTP(w, r)
	}), &seen
}

func TestRetriesIdempotentCalls(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "c1", "name": "c1", "vm": map[string]any{"id": "v1"}, "task": map[string]any{"id": "t1"}})
	})
	retry := client.WithRetry(client.Retry{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})

	t.Run("get is retried", func(t *testing.T) {
		h, seen := flaky(2, ok)
		hs := httptest.NewServer(h)
		defer hs.Close()
		cl, err := client.New(hs.URL, "t", retry).GetCluster(t.Context(), "c1")
		require.NoError(t, err)
		assert.Equal(t, "c1", cl.ID)
		assert.Equal(t, int32(3), seen.Load())
	})
	t.Run("retries run out", func(t *testing.T) {
		h, seen := flaky(100, ok)
		hs := httptest.NewServer(h)
		defer hs.Close()
		_, err := client.New(hs.URL, "t", retry).GetCluster(t.Context(), "c1")
		assert.ErrorIs(t, err, virtplane.ErrUnavailable)
		assert.Equal(t, int32(4), seen.Load())
	})
	t.Run("post without key is not retried", func(t *testing.T) {
		h, seen := flaky(1, ok)
		hs := httptest.NewServer(h)
		defer hs.Close()
		_, err := client.New(hs.URL, "t", retry).CreateCluster(t.Context(), clusterBody("c1"))
		assert.ErrorIs(t, err, virtplane.ErrUnavailable)
		assert.Equal(t, int32(1), seen.Load())
	})
	t.Run("post with idempotency key is retried", func(t *testing.T) {
		h, seen := flaky(1, ok)
		hs := httptest.NewServer(h)
		defer hs.Close()
		vm, _, err := client.New(hs.URL, "t", retry).CreateVM(t.Context(), api.VMCreateBody{Name: "v"}, "order-1")
		require.NoError(t, err)
		assert.Equal(t, "v1", vm.ID)
		assert.Equal(t, int32(2), seen.Load())
	})
	t.Run("unreachable daemon", func(t *testing.T) {
		hs := httptest.NewServer(ok)
		url := hs.URL
		hs.Close()
		_, err := client.New(url, "t", retry).GetCluster(t.Context(), "c1")
		assert.ErrorIs(t, err, virtplane.ErrUnavailable)
	})
}

// TestTaskWaitAndEvents creates a VM on a simulated node through the
// client, follows its task with Task.Wait and sees its events on the
// stream.
func TestTaskWaitAndEvents(t *testing.T) {
	srv := newDaemon(t)
	url, token := serve(t, srv)
	c := client.New(url, token)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	sub, err := c.Subscribe(ctx)
	require.NoError(t, err)
	defer sub.Close()

	cl, err := c.CreateCluster(ctx, clusterBody("c1"))
	require.NoError(t, err)
	_, err = c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "n1", Address: "sim", Cores: 8, MemoryMiB: 8192, DiskGiB: 100})
	require.NoError(t, err)
	pool, err := c.CreatePool(ctx, api.PoolBody{Name: "p1", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "192.0.2.0/28", Gateway: "192.0.2.1"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "img", OSType: "linux", Source: "/var/lib/virtplane/images/x.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	vm, tv, err := c.CreateVM(ctx, api.VMCreateBody{Name: "vm1", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5}, "k1")
	require.NoError(t, err)
	var states []string
	task := c.Task(tv)
	require.NoError(t, task.WaitProgress(ctx, func(v api.TaskView) { states = append(states, v.State) }))
	assert.Equal(t, "succeeded", task.View.State)
	assert.Equal(t, "succeeded", states[len(states)-1])
	got, err := c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, model.VMRunning, got.State)

	// A task that fails: no node has 64 cores free.
	_, tv, err = c.CreateVM(ctx, api.VMCreateBody{Name: "huge", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 200, MemoryMiB: 512, DiskGiB: 5}, "")
	require.NoError(t, err)
	err = c.Task(tv).Wait(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)

	// A context that ends first.
	short, stop := context.WithTimeout(ctx, time.Nanosecond)
	defer stop()
	<-short.Done()
	assert.ErrorIs(t, c.Task(tv).Wait(short), virtplane.ErrTimeout)

	// The stream saw the VM created and its task succeed.
	var sawVM, sawDone bool
	deadline := time.After(10 * time.Second)
	for !sawVM || !sawDone {
		select {
		case e, ok := <-sub.C:
			require.True(t, ok, "stream ended: %v", sub.Err())
			sawVM = sawVM || e.Type == "vm" && e.ID == vm.ID && e.Action == "created"
			sawDone = sawDone || e.Type == "task" && e.ID == tv.ID && client.Terminal(e.State) || e.Type == "task" && e.Target == "vm/"+vm.ID && e.State == "succeeded"
		case <-deadline:
			t.Fatalf("no vm created / task succeeded events within 10s (vm %v, task %v)", sawVM, sawDone)
		}
	}
	sub.Close()
	for range sub.C { // what was buffered, then the end
	}
	assert.NoError(t, sub.Err())

	_, err = client.New(url, "vpt_wrong").Subscribe(ctx)
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
}

func TestPathParametersAreChecked(t *testing.T) {
	c := client.New("http://127.0.0.1:1", "t")
	_, err := c.GetVM(t.Context(), "")
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = c.GetVM(t.Context(), "a/b")
	// escaped, so it reaches no other path; the daemon is not there
	assert.True(t, errors.Is(err, virtplane.ErrUnavailable), "%v", err)
	assert.False(t, strings.Contains(err.Error(), "/v1/vms/a/b"), "%v", err)
}

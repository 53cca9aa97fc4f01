package metrics_test

import (
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/metrics"
	"github.com/virtplane/virtplane/daemon/store"
)

func TestScrape(t *testing.T) {
	st := dbtest.SQLite(t)
	require.NoError(t, st.Update(t.Context(), func(tx store.Tx) error {
		return tx.CreateObject(t.Context(), &store.Object{Kind: store.KindVM, ID: "v1", Name: "v1"})
	}))
	m := metrics.New(st)
	m2 := metrics.New(st) // a second instance must not collide
	m.ObserveRequest("listVMs", 200, 2*time.Millisecond)
	now := time.Now()
	m.ObserveTask(store.Task{Kind: "vm.create", State: store.TaskSucceeded, Started: now.Add(-time.Second), Finished: now})
	m.ObserveTask(store.Task{Kind: "vm.create", State: store.TaskRunning})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	s := string(body)
	assert.Contains(t, s, `virtplane_objects{kind="vm"} 1`)
	assert.Contains(t, s, `virtplane_tasks_finished_total{kind="vm.create",state="succeeded"} 1`)
	assert.Contains(t, s, `virtplane_api_request_duration_seconds_count{code="200",operation="listVMs"} 1`)
	assert.Contains(t, s, `virtplane_task_duration_seconds_count{kind="vm.create"} 1`)
	assert.NotSame(t, m.Registry(), m2.Registry())
}

package daemon_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// TestQuotaLimitsCreatesAndResizes: an admin sets a user's quota; the user
// sees it with what they use; a create or resize past a limit is a 403
// naming the limit, and nothing is made; a limit removed lets it through.
func TestQuotaLimitsCreatesAndResizes(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEnv(t, st)
	ctx := t.Context()
	// No quota: no limits, and the usage of alice's one VM.
	q, err := e.alice.Quota(ctx, e.aliceID)
	require.NoError(t, err)
	assert.Equal(t, model.Unlimited(), q.Limits)
	assert.Equal(t, model.QuotaAmounts{VMs: 1, VCPUs: 1, MemoryMiB: 512, DiskGiB: 5, Addresses: 1}, q.Usage)

	q, err = e.admin.SetQuota(ctx, e.aliceID, api.QuotaPatch{VMs: ptr[int64](2), VCPUs: ptr[int64](3)})
	require.NoError(t, err)
	assert.Equal(t, int64(2), q.Limits.VMs)
	assert.Equal(t, int64(3), q.Limits.VCPUs)
	assert.Equal(t, int64(model.NoLimit), q.Limits.MemoryMiB, "a limit not sent stays as it was")
	q, err = e.admin.SetQuota(ctx, e.aliceID, api.QuotaPatch{Addresses: ptr[int64](10)})
	require.NoError(t, err)
	assert.Equal(t, int64(2), q.Limits.VMs, "kept")
	assert.Equal(t, int64(10), q.Limits.Addresses)

	b := e.vmBody("second")
	b.CPUs = 2
	vm2, tk, err := e.alice.CreateVM(ctx, b, "")
	require.NoError(t, err)
	_, err = e.alice.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	q, err = e.alice.Quota(ctx, e.aliceID)
	require.NoError(t, err)
	assert.Equal(t, model.QuotaAmounts{VMs: 2, VCPUs: 3, MemoryMiB: 1024, DiskGiB: 10, Addresses: 2}, q.Usage)

	_, _, err = e.alice.CreateVM(ctx, e.vmBody("third"), "over-1")
	wantProblem(t, err, 403, "quota.vms")
	assert.Contains(t, err.Error(), "quota vms exceeded: 2 in use + 1 asked > 2 allowed")
	var vms client.Page[model.VM]
	require.NoError(t, e.alice.Do(ctx, "GET", "/v1/vms", nil, &vms))
	assert.Len(t, vms.Items, 2, "the refused create left no VM")
	_, err = st.TaskByIdempotencyKey(ctx, e.aliceID, "over-1")
	assert.Error(t, err, "nor a task")

	_, err = e.alice.ResizeVM(ctx, vm2.ID, 3, 0, 0)
	wantProblem(t, err, 403, "quota.vcpus")
	// Shrinking is always fine, and so is what the limit no longer bounds.
	tk, err = e.alice.ResizeVM(ctx, vm2.ID, 1, 0, 0)
	require.NoError(t, err)
	_, err = e.alice.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	_, err = e.admin.SetQuota(ctx, e.aliceID, api.QuotaPatch{VMs: ptr[int64](-1)})
	require.NoError(t, err)
	_, _, err = e.alice.CreateVM(ctx, e.vmBody("third"), "")
	require.NoError(t, err)

	// Bad input names the field; quotas belong to users that exist.
	_, err = e.admin.SetQuota(ctx, e.aliceID, api.QuotaPatch{VMs: ptr[int64](-2)})
	wantProblem(t, err, 422, "body.vms")
	_, err = e.admin.SetQuota(ctx, "nobody", api.QuotaPatch{VMs: ptr[int64](1)})
	wantProblem(t, err, 404, "path.id")
	_, err = e.admin.Quota(ctx, "nobody")
	wantProblem(t, err, 404, "path.id")
	// A user changes no quota, and sees no other user's.
	_, err = e.bob.SetQuota(ctx, e.bobID, api.QuotaPatch{VMs: ptr[int64](100)})
	wantProblem(t, err, 403, "")
	_, err = e.bob.Quota(ctx, e.aliceID)
	wantProblem(t, err, 404, "path.id")
}

// TestQuotaHoldsUnderConcurrentCreates: creates sent at once by one user
// with a quota of 5 VMs give exactly 5 VMs, on SQLite and on PostgreSQL
// (where the creates' transactions run in parallel).
func TestQuotaHoldsUnderConcurrentCreates(t *testing.T) {
	for name, open := range map[string]func(testing.TB) store.Store{
		"sqlite":   func(t testing.TB) store.Store { return dbtest.SQLite(t) },
		"postgres": func(t testing.TB) store.Store { return dbtest.Postgres(t) },
	} {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			e := newEnv(t, st)
			ctx := t.Context()
			_, err := e.admin.SetQuota(ctx, e.bobID, api.QuotaPatch{VMs: ptr[int64](5)})
			require.NoError(t, err)
			var mu sync.Mutex
			var ok, refused int
			var wg sync.WaitGroup
			for i := range 60 {
				wg.Go(func() {
					_, _, err := e.bob.CreateVM(ctx, e.vmBody(fmt.Sprintf("race-%d", i)), "")
					mu.Lock()
					defer mu.Unlock()
					var p *client.Problem
					switch {
					case err == nil:
						ok++
					case assert.ErrorAs(t, err, &p) && p.Status == 403 && p.Field() == "quota.vms":
						refused++
					default:
						t.Errorf("create %d: %v", i, err)
					}
				})
			}
			wg.Wait()
			assert.Equal(t, 5, ok)
			assert.Equal(t, 55, refused)
			n, err := st.CountObjects(ctx, store.KindVM, store.ListOptions{Owner: e.bobID})
			require.NoError(t, err)
			assert.Equal(t, 5, n)
		})
	}
}

// TestQuotaEveryResource: each amount a quota counts refuses on its own:
// memory, disk (root and data disks) and addresses at create, memory and
// disk on resize and clone, each a 403 naming its limit, with nothing made.
func TestQuotaEveryResource(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	// alice holds one VM: 1 vCPU, 512 MiB, 5 GiB, 1 address.
	set := func(p api.QuotaPatch) {
		t.Helper()
		// Only the limits sent change: lift all, then set p's.
		none := ptr[int64](model.NoLimit)
		_, err := e.admin.PutQuota(ctx, e.aliceID, api.QuotaPatch{VMs: none, VCPUs: none, MemoryMiB: none, DiskGiB: none, Addresses: none})
		require.NoError(t, err)
		_, err = e.admin.SetQuota(ctx, e.aliceID, p)
		require.NoError(t, err)
	}
	count := func() int {
		t.Helper()
		var vms client.Page[model.VM]
		require.NoError(t, e.alice.Do(ctx, "GET", "/v1/vms", nil, &vms))
		return len(vms.Items)
	}
	big := func(f func(*api.VMCreateBody)) api.VMCreateBody {
		b := e.vmBody("next")
		f(&b)
		return b
	}
	for _, tc := range []struct {
		name  string
		quota api.QuotaPatch
		body  api.VMCreateBody
		field string
	}{
		{"memory", api.QuotaPatch{MemoryMiB: ptr[int64](1024)}, big(func(b *api.VMCreateBody) { b.MemoryMiB = 1024 }), "quota.memory_mib"},
		{"root disk", api.QuotaPatch{DiskGiB: ptr[int64](10)}, big(func(b *api.VMCreateBody) { b.DiskGiB = 6 }), "quota.disk_gib"},
		{"data disk", api.QuotaPatch{DiskGiB: ptr[int64](10)}, big(func(b *api.VMCreateBody) { b.DiskGiB = 1; b.Disks = []api.DiskRequest{{SizeGiB: 5}} }), "quota.disk_gib"},
		{"addresses", api.QuotaPatch{Addresses: ptr[int64](1)}, e.vmBody("next"), "quota.addresses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.quota)
			before := count()
			_, _, err := e.alice.CreateVM(ctx, tc.body, "")
			wantProblem(t, err, 403, tc.field)
			assert.Equal(t, before, count(), "the refused create left no VM")
		})
	}
	// What fits exactly is let through.
	set(api.QuotaPatch{MemoryMiB: ptr[int64](1024), DiskGiB: ptr[int64](10), Addresses: ptr[int64](2)})
	fits, tk, err := e.alice.CreateVM(ctx, e.vmBody("fits"), "")
	require.NoError(t, err)
	tk, err = e.alice.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(tk))
	// Now at every limit: growing memory or disk, or a clone, is refused.
	_, err = e.alice.ResizeVM(ctx, fits.ID, 0, 1024, 0)
	wantProblem(t, err, 403, "quota.memory_mib")
	_, err = e.alice.ResizeVM(ctx, fits.ID, 0, 0, 6)
	wantProblem(t, err, 403, "quota.disk_gib")
	stop, err := e.alice.StopVM(ctx, fits.ID)
	require.NoError(t, err)
	_, err = e.alice.WaitTask(ctx, stop.ID)
	require.NoError(t, err)
	_, _, err = e.alice.CloneVM(ctx, fits.ID, "copy", "")
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	assert.Equal(t, 403, p.Status, p.Error())
	assert.Contains(t, p.Field(), "quota.", "a clone counts like a create")
	q, err := e.alice.Quota(ctx, e.aliceID)
	require.NoError(t, err)
	assert.Equal(t, model.QuotaAmounts{VMs: 2, VCPUs: 2, MemoryMiB: 1024, DiskGiB: 10, Addresses: 2}, q.Usage, "nothing refused was counted")
}

package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
)

// TestPoolBlocksRefuseBadInput: a block the library's IPAM would refuse is
// refused by the API, naming the part at fault, whether or not the daemon
// runs an IPAM.
func TestPoolBlocksRefuseBadInput(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	pool := func(blocks ...api.BlockBody) api.PoolBody {
		return api.PoolBody{Name: "p", ClusterIDs: []string{e.cluster.ID}, Blocks: blocks}
	}
	for _, tc := range []struct {
		name   string
		body   api.PoolBody
		status int
		field  string
	}{
		{"host bits set", pool(api.BlockBody{Range: "198.51.100.1/24"}), 422, "body.blocks[0].range"},
		{"not a network", pool(api.BlockBody{Range: "198.51.100.0/33"}), 422, "body.blocks[0].range"},
		{"mixed families", pool(api.BlockBody{Range: "198.51.100.1-2001:db8::1"}), 422, "body.blocks[0].range"},
		{"range backwards", pool(api.BlockBody{Range: "198.51.100.9-198.51.100.1"}), 422, "body.blocks[0].range"},
		{"gateway outside", pool(api.BlockBody{Range: "198.51.100.0/24", Gateway: "203.0.113.1"}), 422, "body.blocks[0].gateway"},
		{"gateway no address", pool(api.BlockBody{Range: "198.51.100.0/24", Gateway: "router"}), 422, "body.blocks[0].gateway"},
		{"excluded outside", pool(api.BlockBody{Range: "198.51.100.0/24", Excluded: []string{"198.51.100.9", "203.0.113.0/28"}}), 422, "body.blocks[0].excluded[1]"},
		{"excluded no range", pool(api.BlockBody{Range: "198.51.100.0/24", Excluded: []string{"nine"}}), 422, "body.blocks[0].excluded[0]"},
		{"reserved outside", pool(api.BlockBody{Range: "198.51.100.0/24", Reserved: []string{"203.0.113.5"}}), 422, "body.blocks[0].reserved[0]"},
		{"reserved a range", pool(api.BlockBody{Range: "198.51.100.0/24", Reserved: []string{"198.51.100.0/28"}}), 422, "body.blocks[0].reserved[0]"},
		{"blocks overlap", pool(api.BlockBody{Range: "198.51.100.0/24"}, api.BlockBody{Range: "198.51.100.128-198.51.101.9"}), 422, "body.blocks[1].range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.admin.CreatePool(ctx, tc.body)
			var p *client.Problem
			require.ErrorAs(t, err, &p)
			assert.Equal(t, tc.status, p.Status, p.Error())
			assert.Equal(t, tc.field, p.Field(), p.Error())
			assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
		})
	}
	// A block added to a pool must not overlap the pool's blocks.
	_, err := e.admin.AddPoolBlock(ctx, e.pool.ID, api.BlockBody{Range: "192.0.2.128/25"})
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	assert.Equal(t, "body.range", p.Field(), p.Error())
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	_, err = e.admin.AddPoolBlock(ctx, e.pool.ID, api.BlockBody{Range: "192.0.2.0/24", Reserved: []string{"x"}})
	require.ErrorAs(t, err, &p)
	assert.Equal(t, "body.reserved[0]", p.Field(), p.Error())
	got, err := e.admin.GetPool(ctx, e.pool.ID)
	require.NoError(t, err)
	assert.Len(t, got.Blocks, 1, "nothing of a refused block stays")
}

// TestPoolExclusionsAndReservations: next-free allocation skips excluded
// and reserved addresses; an admin hands out a reserved one by asking for
// it; an excluded one, the gateway and the broadcast address are refused
// at once, naming body.address; a user may not choose.
func TestPoolExclusionsAndReservations(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pool, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "small", ClusterIDs: []string{e.cluster.ID}, Blocks: []api.BlockBody{
		{Range: "198.51.100.0/29", Gateway: "198.51.100.1", Excluded: []string{"198.51.100.2-198.51.100.3"}, Reserved: []string{"198.51.100.4"}},
		{Range: "2001:db8::/126"},
	}})
	require.NoError(t, err)
	require.Len(t, pool.Blocks, 2)
	assert.Equal(t, "ipv4", pool.Blocks[0].Family)
	assert.Equal(t, "ipv6", pool.Blocks[1].Family)
	assert.Equal(t, []string{"198.51.100.2-198.51.100.3"}, pool.Blocks[0].Excluded)
	assert.Equal(t, []string{"198.51.100.4"}, pool.Blocks[0].Reserved)

	create := func(c *client.Client, name, address string) ([]string, error) {
		t.Helper()
		b := e.vmBody(name)
		b.PoolID, b.Address = pool.ID, address
		vm, task, err := c.CreateVM(ctx, b, "")
		if err != nil {
			return nil, err
		}
		task, err = c.WaitTask(ctx, task.ID)
		require.NoError(t, err)
		if err := client.TaskError(task); err != nil {
			return nil, err
		}
		vm, err = c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		return vm.Addresses, nil
	}
	got, err := create(e.alice, "a1", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"198.51.100.5"}, got, "past the gateway, the excluded and the reserved address")
	got, err = create(e.alice, "a2", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"198.51.100.6"}, got)
	got, err = create(e.alice, "a3", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"2001:db8::1"}, got, "the IPv4 block is full (.7 is its broadcast address); the next block serves, past its Subnet-Router anycast address")

	_, err = create(e.alice, "a4", "198.51.100.4")
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	assert.Equal(t, 403, p.Status)
	assert.Equal(t, "body.address", p.Field())

	for _, tc := range []struct{ address, why string }{
		{"198.51.100.2", "excluded"}, {"198.51.100.1", "gateway"}, {"198.51.100.7", "broadcast"},
		{"203.0.113.5", "in no block"}, {"not-an-address", "not an IP address"}, {"2001:db8::", "Subnet-Router anycast"},
	} {
		_, err = create(e.admin, "refused", tc.address)
		require.ErrorAs(t, err, &p, tc.address)
		assert.Equal(t, 422, p.Status, tc.address)
		assert.Equal(t, "body.address", p.Field(), tc.address)
		assert.Contains(t, p.Error(), tc.why)
	}
	got, err = create(e.admin, "reserved", "198.51.100.4")
	require.NoError(t, err)
	assert.Equal(t, []string{"198.51.100.4"}, got, "a reserved address is handed out when asked for")
	// Asked for while another VM holds it: the create fails and leaves
	// nothing (the task's rollback).
	_, err = create(e.admin, "twice", "198.51.100.5")
	assert.ErrorIs(t, err, virtplane.ErrConflict)
}

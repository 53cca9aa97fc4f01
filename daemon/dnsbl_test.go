package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/network/ipam/dnsbl"
	"github.com/virtplane/virtplane/network/ipam/dnsbl/dnsbltest"
)

// dnsblZone is a blocklist on a real DNS server on loopback: .2 (a VM's
// address) and .4 (free) listed with reasons, .5 refused (127.255.255.254,
// the zone's "query refused" answer), NXDOMAIN for every other name.
func dnsblZone(t *testing.T) string {
	a := func(s string) string { return dnsbl.QueryName(netip.MustParseAddr(s), "bl.test") }
	return dnsbltest.Serve(t, dnsbltest.Zone{
		A: map[string][]netip.Addr{
			a("198.51.100.2"): {netip.MustParseAddr("127.0.0.2")},
			a("198.51.100.4"): {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.4")},
			a("198.51.100.5"): {netip.MustParseAddr("127.255.255.254")},
		},
		TXT: map[string][]string{
			a("198.51.100.2"): {"held for testing"},
			a("198.51.100.4"): {"spam source"},
		},
	})
}

// newDNSBLEnv is newEnv on a daemon configured with the zone bl.test on
// the DNS server at addr, asked by a pure-Go net.Resolver.
func newDNSBLEnv(t *testing.T, addr string) *env {
	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "test", DataDir: t.TempDir(),
		DNSBL: daemon.DNSBLConfig{Zones: []string{"bl.test"}, Resolver: dnsbltest.NetResolver(addr)}})
	require.NoError(t, err)
	return newEnvOn(t, srv)
}

// createIn creates a VM in pool and returns it, or the error of the
// create (its task's).
func (e *env) createIn(ctx context.Context, t *testing.T, poolID, name string) (model.VM, error) {
	t.Helper()
	b := e.vmBody(name)
	b.PoolID = poolID
	vm, task, err := e.admin.CreateVM(ctx, b, "")
	if err != nil {
		return model.VM{}, err
	}
	task, err = e.admin.WaitTask(ctx, task.ID)
	require.NoError(t, err)
	if err := client.TaskError(task); err != nil {
		return model.VM{}, err
	}
	vm, err = e.admin.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	return vm, nil
}

// TestDNSBLCheckAndExclude: a check asks the real DNS server for the
// addresses VMs hold and those asked; a VM's listed address is reported
// with the VM and its reason, never excluded; a free listed one is
// excluded, in the pool record and in IPAM, so that creates exhaust the
// block without ever getting it; a refused query is an error, not a
// listing.
func TestDNSBLCheckAndExclude(t *testing.T) {
	e := newDNSBLEnv(t, dnsblZone(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pool, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "small", ClusterIDs: []string{e.cluster.ID}, Blocks: []api.BlockBody{
		{Range: "198.51.100.0/29", Gateway: "198.51.100.1"}, // .2-.6 handed out
	}})
	require.NoError(t, err)
	held, err := e.createIn(ctx, t, pool.ID, "held")
	require.NoError(t, err)
	require.Equal(t, []string{"198.51.100.2"}, held.Addresses)
	heldBy := held.ID

	rep, err := e.admin.CheckPoolDNSBL(ctx, pool.ID, api.DNSBLCheckBody{Addresses: []string{"198.51.100.5", "198.51.100.4", "198.51.100.3"}, ExcludeListed: true})
	require.NoError(t, err)
	assert.Equal(t, pool.ID, rep.Pool)
	assert.Equal(t, []string{"bl.test"}, rep.Zones)
	assert.Equal(t, []string{"198.51.100.4"}, rep.Excluded)
	require.Len(t, rep.Addresses, 4)
	block := pool.Blocks[0].ID
	assert.Equal(t, api.DNSBLAddress{Address: "198.51.100.2", Block: block, VM: heldBy, Listed: true,
		Listings: []api.DNSBLListing{{Zone: "bl.test", Codes: []string{"127.0.0.2"}, Reason: "held for testing"}}, Errors: []api.DNSBLZoneError{}}, rep.Addresses[0], "a VM's address is reported, not excluded")
	assert.Equal(t, api.DNSBLAddress{Address: "198.51.100.3", Block: block, Listings: []api.DNSBLListing{}, Errors: []api.DNSBLZoneError{}}, rep.Addresses[1])
	assert.Equal(t, api.DNSBLAddress{Address: "198.51.100.4", Block: block, Listed: true, Excluded: true,
		Listings: []api.DNSBLListing{{Zone: "bl.test", Codes: []string{"127.0.0.2", "127.0.0.4"}, Reason: "spam source"}}, Errors: []api.DNSBLZoneError{}}, rep.Addresses[2])
	refused := rep.Addresses[3]
	assert.Equal(t, "198.51.100.5", refused.Address)
	assert.False(t, refused.Listed, "a refusal is no listing")
	assert.False(t, refused.Excluded)
	require.Len(t, refused.Errors, 1)
	assert.Equal(t, "bl.test", refused.Errors[0].Zone)
	assert.Contains(t, refused.Errors[0].Error, "refused")

	p, err := e.admin.GetPool(ctx, pool.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"198.51.100.4"}, p.Blocks[0].Excluded)
	ip, err := e.srv.IPAM.GetPool(ctx, pool.ID)
	require.NoError(t, err)
	assert.Equal(t, "[198.51.100.4-198.51.100.4]", fmt.Sprint(ip.Blocks[0].Excluded), "IPAM excludes it too")
	var addrs []string
	for i := range 10 {
		vm, err := e.createIn(ctx, t, pool.ID, fmt.Sprintf("next%d", i))
		if err != nil {
			require.ErrorIs(t, err, virtplane.ErrResourceExhausted)
			break
		}
		addrs = append(addrs, vm.Addresses...)
	}
	assert.Equal(t, []string{"198.51.100.3", "198.51.100.5", "198.51.100.6"}, addrs, "the block is exhausted without the excluded address")

	// Now held, .3 and .5 are checked without being asked for; .4 can
	// no longer be asked for (excluded).
	rep, err = e.admin.CheckPoolDNSBL(ctx, pool.ID, api.DNSBLCheckBody{ExcludeListed: true})
	require.NoError(t, err)
	var checked []string
	for _, a := range rep.Addresses {
		checked = append(checked, a.Address)
		assert.NotEmpty(t, a.VM, a.Address)
		assert.False(t, a.Excluded, a.Address)
	}
	assert.Equal(t, []string{"198.51.100.2", "198.51.100.3", "198.51.100.5", "198.51.100.6"}, checked)
	assert.Empty(t, rep.Excluded)
	_, err = e.admin.CheckPoolDNSBL(ctx, pool.ID, api.DNSBLCheckBody{Addresses: []string{"198.51.100.4"}})
	assertField(t, err, 422, "body.addresses[0]", "excluded")
}

// assertField checks that err is a problem of status naming field, its
// message holding why.
func assertField(t *testing.T, err error, status int, field, why string) {
	t.Helper()
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	assert.Equal(t, status, p.Status, p.Error())
	assert.Equal(t, field, p.Field(), p.Error())
	assert.Contains(t, p.Error(), why)
}

// TestDNSBLRefusesBadInput: addresses outside the pool or too many are
// refused naming the field, before any query; unknown pools are 404,
// non-admins are refused.
func TestDNSBLRefusesBadInput(t *testing.T) {
	e := newDNSBLEnv(t, dnsblZone(t))
	ctx := t.Context()
	check := func(c *client.Client, id string, addrs ...string) error {
		_, err := c.CheckPoolDNSBL(ctx, id, api.DNSBLCheckBody{Addresses: addrs})
		return err
	}
	assertField(t, check(e.admin, e.pool.ID, "192.0.2.9", "not-an-address"), 422, "body.addresses[1]", "not an IP address")
	assertField(t, check(e.admin, e.pool.ID, "203.0.113.5"), 422, "body.addresses[0]", "in no block")
	assertField(t, check(e.admin, e.pool.ID, "192.0.2.1"), 422, "body.addresses[0]", "gateway")
	many := make([]string, 257)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i%250 + 2)}).String()
	}
	assertField(t, check(e.admin, e.pool.ID, many...), 422, "body.addresses", "256")
	assertField(t, check(e.admin, "no-such-pool"), 404, "path.id", "no-such-pool")
	err := check(e.bob, e.pool.ID)
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	assert.Contains(t, []int{403, 404}, p.Status)
}

// TestDNSBLWithoutZones: a daemon without zones answers 501 naming the
// missing configuration, never an empty, clean-looking report.
func TestDNSBLWithoutZones(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	_, err := e.admin.CheckPoolDNSBL(t.Context(), e.pool.ID, api.DNSBLCheckBody{})
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	assert.Equal(t, 501, p.Status)
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
	assert.Contains(t, p.Detail, "no DNSBL zones configured")
}

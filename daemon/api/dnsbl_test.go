package api

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/network/ipam/dnsbl"
)

// The rules of the check, apart from DNS: only a listed address no VM
// holds is excluded, and only when asked; a failed zone does not keep
// another zone's listing from counting; an error that names no zone is
// still reported.
func TestDNSBLReportRules(t *testing.T) {
	addr := netip.MustParseAddr
	r := dnsbl.NewFakeResolver()
	r.SetA("1.2.0.192.bl.test", addr("127.0.0.2")) // .1 listed, held
	r.SetA("2.2.0.192.bl.test", addr("127.0.0.2")) // .2 listed, free
	r.SetA("2.2.0.192.bl2.test", addr("127.255.255.254"))
	c, err := dnsbl.New(dnsbl.Config{Resolver: r, Zones: []string{"bl.test", "bl2.test"}}, dnsbl.WithoutReasons())
	require.NoError(t, err)
	targets := []dnsblTarget{{addr: addr("192.0.2.1"), block: "b", vm: "vm1"}, {addr: addr("192.0.2.2"), block: "b"}, {addr: addr("192.0.2.3"), block: "b"}}
	outcomes := checkDNSBL(t.Context(), c, targets)
	outcomes = append(outcomes, dnsblOutcome{dnsblTarget: dnsblTarget{addr: addr("192.0.2.4"), block: "b"}, err: errors.New("boom")})

	rep, exclude := dnsblReport("p", c.Zones(), outcomes, false)
	assert.Empty(t, exclude, "nothing is excluded unless asked")
	assert.Empty(t, rep.Excluded)
	rep, exclude = dnsblReport("p", c.Zones(), outcomes, true)
	assert.Equal(t, []netip.Addr{addr("192.0.2.2")}, exclude)
	assert.Equal(t, []string{"192.0.2.2"}, rep.Excluded)
	require.Len(t, rep.Addresses, 4)
	assert.True(t, rep.Addresses[0].Listed)
	assert.False(t, rep.Addresses[0].Excluded, "a VM's address is reported only")
	assert.True(t, rep.Addresses[1].Excluded)
	assert.Equal(t, []DNSBLZoneError{{Zone: "bl2.test", Error: rep.Addresses[1].Errors[0].Error}}, rep.Addresses[1].Errors)
	assert.Contains(t, rep.Addresses[1].Errors[0].Error, "refused")
	assert.False(t, rep.Addresses[2].Listed)
	assert.Empty(t, rep.Addresses[2].Errors)
	assert.Equal(t, []DNSBLZoneError{{Error: "boom"}}, rep.Addresses[3].Errors)
}

// Targets: held and asked addresses once each, in address order; the
// asked ones must be addresses the pool hands out.
func TestDNSBLTargets(t *testing.T) {
	pool := model.IPPool{ID: "p", Name: "p", Blocks: []model.IPBlock{{ID: "b", Range: "192.0.2.0/28", Gateway: "192.0.2.1"}}}
	held := map[netip.Addr]string{netip.MustParseAddr("192.0.2.5"): "vm1"}
	got, err := dnsblTargets(pool, held, []string{"192.0.2.9", "192.0.2.5", "::ffff:192.0.2.3"})
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []dnsblTarget{{netip.MustParseAddr("192.0.2.3"), "b", ""}, {netip.MustParseAddr("192.0.2.5"), "b", "vm1"}, {netip.MustParseAddr("192.0.2.9"), "b", ""}}, got)
	_, err = dnsblTargets(pool, held, []string{"192.0.2.9", "192.0.2.1"})
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "body.addresses[1]", fe.Location)
}

// slowResolver answers NXDOMAIN after a while and records how many
// queries it had in flight at most.
type slowResolver struct {
	mu             sync.Mutex
	inFlight, most int
}

func (r *slowResolver) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	r.inFlight++
	r.most = max(r.most, r.inFlight)
	r.mu.Unlock()
	defer func() { r.mu.Lock(); r.inFlight--; r.mu.Unlock() }()
	select {
	case <-time.After(5 * time.Millisecond):
	case <-ctx.Done():
		return nil, &net.DNSError{Err: ctx.Err().Error(), Name: host}
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *slowResolver) LookupTXT(context.Context, string) ([]string, error) { return nil, nil }

// A check of many addresses has at most dnsblParallel addresses (times
// the zones) in flight, and stops with the request's context.
func TestCheckDNSBLIsBounded(t *testing.T) {
	r := &slowResolver{}
	c, err := dnsbl.New(dnsbl.Config{Resolver: r, Zones: []string{"bl.test", "bl2.test"}})
	require.NoError(t, err)
	var targets []dnsblTarget
	for i := range 64 {
		targets = append(targets, dnsblTarget{addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})})
	}
	for _, o := range checkDNSBL(t.Context(), c, targets) {
		require.NoError(t, o.err)
	}
	assert.LessOrEqual(t, r.most, dnsblParallel*2)
	assert.Greater(t, r.most, 2, "addresses are checked in parallel")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, o := range checkDNSBL(ctx, c, targets[:4]) {
		assert.ErrorIs(t, o.err, virtplane.ErrCanceled)
	}
}

// More than maxDNSBLAddresses is refused: naming body.addresses when some
// were asked, the pool (path.id) when the held ones alone are too many.
func TestDNSBLTargetsAreBounded(t *testing.T) {
	pool := model.IPPool{ID: "p", Name: "p", Blocks: []model.IPBlock{{ID: "b", Range: "10.0.0.0/16"}}}
	held := map[netip.Addr]string{}
	for i := range maxDNSBLAddresses + 1 {
		held[netip.AddrFrom4([4]byte{10, 0, byte(i / 200), byte(i%200 + 1)})] = "vm"
	}
	_, err := dnsblTargets(pool, held, nil)
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "path.id", fe.Location)
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	delete(held, netip.AddrFrom4([4]byte{10, 0, 0, 1}))
	_, err = dnsblTargets(pool, held, nil)
	require.NoError(t, err, "256 is allowed")
	_, err = dnsblTargets(pool, held, []string{"10.0.9.9"})
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "body.addresses", fe.Location)
}

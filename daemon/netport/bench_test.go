package netport_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane/daemon/netport"
	"github.com/virtplane/virtplane/network/firewall"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/nettest"
	"github.com/virtplane/virtplane/network/shaping"
)

// BenchmarkKernelSetup measures the Setup the create flow runs once the VM
// started (the port set up already: the record is unchanged, the bridge
// and tap as wanted, the firewall table replaced, the limits read back)
// beside the bare calls of the network packages for the same port, and
// reports the ratio: what the Host adds (its state files, the bridge
// decision over every port) to what the kernel work costs anyway.
func BenchmarkKernelSetup(b *testing.B) {
	ctx := b.Context()
	h, ns, dir := kernelHost(b)
	spec := netport.ForVM("bench", "vptbr-bench", []netip.Addr{netip.MustParseAddr("192.0.2.10")})
	spec.InKbit, spec.OutKbit = 20_000, 20_000
	require.NoError(b, h.Setup(ctx, spec))
	plug(b, ns, spec.Name)
	// A node with other ports on the bridge, as in use.
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		require.NoError(b, h.Setup(ctx, netport.ForVM(id, "vptbr-bench", nil)))
	}
	require.NoError(b, h.Setup(ctx, spec))

	// The reference: the same work through the network packages directly.
	fd, err := netns.GetFromName(ns.Name)
	require.NoError(b, err)
	b.Cleanup(func() { _ = fd.Close() })
	nft, err := nftables.New(nftables.WithNetNSFd(int(fd)))
	require.NoError(b, err)
	b.Cleanup(func() { _ = nft.CloseLasting() })
	nl := nettest.Handle(b, ns.Name)
	links, err := hostnet.New(hostnet.Config{Netlink: nl, OwnerTag: netport.OwnerTag(dir)})
	require.NoError(b, err)
	fw, err := firewall.New(nft)
	require.NoError(b, err)
	sh, err := shaping.New(nl)
	require.NoError(b, err)
	desired := hostnet.Desired{Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "vptbr-bench"}}},
		Ports: []hostnet.Port{{Name: spec.Name, Master: "vptbr-bench"}}}
	bare := func() {
		_, err := links.Apply(ctx, desired)
		require.NoError(b, err)
		require.NoError(b, fw.Apply(ctx, spec.Policy()))
		_, err = sh.Apply(ctx, spec.Limit())
		require.NoError(b, err)
	}
	for range 10 { // both warm
		bare()
		require.NoError(b, h.Setup(ctx, spec))
	}

	for b.Loop() {
		require.NoError(b, h.Setup(ctx, spec))
	}
	per := b.Elapsed() / time.Duration(b.N)
	start := time.Now()
	for range b.N {
		bare()
	}
	ref := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(ref.Microseconds()), "bare-µs/op")
	b.ReportMetric(float64(per)/float64(ref), "x-bare")
}

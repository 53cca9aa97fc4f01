package port_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane/network/firewall"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/nettest"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/routing"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/network/vxlan"
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
	_, links, fw, sh := bareStack(b, ns.Name, dir)
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

// BenchmarkKernelSetupModes is BenchmarkKernelSetup for a routed and a
// VXLAN port among eight others of the same mode: the Host's Setup beside
// the bare calls for the port (router Apply over every routed port; the
// VxLAN network's links and flood list), firewall and shaping.
func BenchmarkKernelSetupModes(b *testing.B) {
	gw := netip.MustParseAddr("192.0.2.1")
	vx := func(id string) netport.Spec {
		s := netport.ForVM(id, "", nil)
		s.Mode = netport.ModeVXLAN
		s.VXLAN = &netport.VXLAN{VNI: 900, Local: netip.MustParseAddr("10.99.0.1"),
			Peers: []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.3")}}
		return s.Normalize()
	}
	for _, mode := range []string{netport.ModeRouted, netport.ModeVXLAN} {
		b.Run(mode, func(b *testing.B) {
			ctx := b.Context()
			h, ns, dir := kernelHost(b)
			spec := vx("bench")
			if mode == netport.ModeRouted {
				spec = netport.ForVM("bench", "", nil)
				spec.Mode, spec.GatewayV4 = netport.ModeRouted, gw
			}
			spec.Addresses = []netip.Addr{netip.MustParseAddr("192.0.2.10")}
			spec.InKbit, spec.OutKbit = 20_000, 20_000
			require.NoError(b, h.Setup(ctx, spec))
			plug(b, ns, spec.Name)
			routed := []routing.VM{{Port: spec.Name, IPv4: spec.Addresses}}
			ports := []string{spec.Name}
			for i, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
				o := vx(id)
				if mode == netport.ModeRouted {
					o = netport.ForVM(id, "", nil)
					o.Mode, o.GatewayV4 = netport.ModeRouted, gw
				}
				o.Addresses = []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(20 + i)})}
				require.NoError(b, h.Setup(ctx, o))
				plug(b, ns, o.Name)
				require.NoError(b, h.Setup(ctx, o))
				routed = append(routed, routing.VM{Port: o.Name, IPv4: o.Addresses})
				ports = append(ports, o.Name)
			}
			require.NoError(b, h.Setup(ctx, spec))

			nl, links, fw, sh := bareStack(b, ns.Name, dir)
			router, err := routing.New(nl, routing.Config{GatewayV4: gw})
			require.NoError(b, err)
			network := vxlan.Network{VNI: 900, Ports: ports}
			desired, err := vxlan.Desired(vxlan.Underlay{Local: netip.MustParseAddr("10.99.0.1")}, []vxlan.Network{network}, true)
			require.NoError(b, err)
			bare := func() {
				if mode == netport.ModeRouted {
					_, err := router.Apply(ctx, routed)
					require.NoError(b, err)
				} else {
					_, err := links.Apply(ctx, desired)
					require.NoError(b, err)
					_, _, err = vxlan.SyncFDB(ctx, nl, network.Device(), vxlan.FullMesh(spec.VXLAN.Local, spec.VXLAN.Peers))
					require.NoError(b, err)
				}
				require.NoError(b, fw.Apply(ctx, spec.Policy()))
				_, err = sh.Apply(ctx, spec.Limit())
				require.NoError(b, err)
			}
			for range 10 {
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
		})
	}
}

// bareStack opens the network packages a Host drives, on the namespace ns
// and owning what a Host with state directory dir owns: the reference the
// benchmarks run beside the Host.
func bareStack(b *testing.B, ns, dir string) (*netlink.Handle, *hostnet.Host, *firewall.Firewall, *shaping.Shaper) {
	b.Helper()
	fd, err := netns.GetFromName(ns)
	require.NoError(b, err)
	b.Cleanup(func() { _ = fd.Close() })
	nft, err := nftables.New(nftables.WithNetNSFd(int(fd)))
	require.NoError(b, err)
	b.Cleanup(func() { _ = nft.CloseLasting() })
	nl := nettest.Handle(b, ns)
	links, err := hostnet.New(hostnet.Config{Netlink: nl, OwnerTag: netport.OwnerTag(dir)})
	require.NoError(b, err)
	fw, err := firewall.New(nft)
	require.NoError(b, err)
	sh, err := shaping.New(nl)
	require.NoError(b, err)
	return nl, links, fw, sh
}

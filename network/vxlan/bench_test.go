package vxlan_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/nettest"
	"github.com/virtplane/virtplane/network/vxlan"
)

// BenchmarkSyncFDB: a full mesh of 10 peers where one peer is replaced per
// iteration. SyncFDB changes two entries; the naive reference deletes every
// flood entry and appends them all again. The ratio is naive / SyncFDB.
func BenchmarkSyncFDB(b *testing.B) {
	ns := testenv.NewNetns(b)
	ns.Run(b, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0x")
	ns.Run(b, "ip", "link", "set", "eth0", "up")
	ns.Run(b, "ip", "addr", "add", "10.60.0.1/24", "dev", "eth0")
	nl := nettest.Handle(b, ns.Name)
	h, err := hostnet.New(hostnet.Config{Netlink: nl})
	require.NoError(b, err)
	local := netip.MustParseAddr("10.60.0.1")
	d, err := vxlan.Desired(vxlan.Underlay{Local: local, Device: "eth0"}, []vxlan.Network{{Name: "n", VNI: 100}}, true)
	require.NoError(b, err)
	_, err = h.Apply(b.Context(), d)
	require.NoError(b, err)
	peers := func(extra byte) []netip.Addr {
		var out []netip.Addr
		for i := byte(2); i < 11; i++ {
			out = append(out, netip.AddrFrom4([4]byte{10, 60, 0, i}))
		}
		return append(out, netip.AddrFrom4([4]byte{10, 60, 0, extra}))
	}
	link, err := nl.LinkByName("vx100")
	require.NoError(b, err)
	naive := func(ps []netip.Addr) {
		cur, err := nl.NeighList(link.Attrs().Index, unix.AF_BRIDGE)
		require.NoError(b, err)
		for _, n := range cur {
			if n.IP != nil {
				require.NoError(b, nl.NeighDel(&n))
			}
		}
		for _, p := range ps {
			require.NoError(b, nl.NeighAppend(&netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_BRIDGE,
				State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF, IP: net.IP(p.AsSlice()), HardwareAddr: vxlan.FloodMAC()}))
		}
	}
	_, _, err = vxlan.SyncFDB(b.Context(), nl, "vx100", vxlan.FullMesh(local, peers(20)))
	require.NoError(b, err)
	var syncTime, naiveTime time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		added, removed, err := vxlan.SyncFDB(b.Context(), nl, "vx100", vxlan.FullMesh(local, peers(byte(20+i%2))))
		syncTime += time.Since(start)
		require.NoError(b, err)
		require.Equal(b, [2]int{1, 1}, [2]int{added, removed})
		b.StopTimer()
		start = time.Now()
		naive(peers(byte(20 + (i+1)%2)))
		naiveTime += time.Since(start)
		naive(peers(byte(20 + i%2)))
		b.StartTimer()
	}
	b.ReportMetric(float64(naiveTime)/float64(syncTime), "naive/sync")
}

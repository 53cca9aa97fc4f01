package smoke

import (
	"net"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane/internal/testenv"
)

// TestVxlanBetweenNamespaces builds two namespaced hosts joined by a veth
// underlay, puts a VxLAN device (VNI 4242, unicast remote) in each with
// netlink, and pings across the overlay.
func TestVxlanBetweenNamespaces(t *testing.T) {
	h1, h2 := testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, h1, "eth0", "10.250.0.1/24", h2, "eth0", "10.250.0.2/24")

	for _, h := range []struct {
		ns            *testenv.Netns
		local, remote string
		overlay       string
	}{
		{h1, "10.250.0.1", "10.250.0.2", "10.250.1.1/24"},
		{h2, "10.250.0.2", "10.250.0.1", "10.250.1.2/24"},
	} {
		addVxlan(t, h.ns.Name, h.local, h.remote, h.overlay)
	}
	h1.Run(t, "ping", "-c", "2", "-W", "2", "-i", "0.2", "10.250.1.2")
	h2.Run(t, "ping", "-c", "1", "-W", "2", "10.250.1.1")
}

func addVxlan(t *testing.T, nsName, local, remote, overlay string) {
	t.Helper()
	// A netlink handle bound to the namespace acts there whatever thread the
	// goroutine runs on; lock anyway so GetFromName's fd use stays on one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := netns.GetFromName(nsName)
	require.NoError(t, err)
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	require.NoError(t, err)
	defer h.Close()

	underlay, err := h.LinkByName("eth0")
	require.NoError(t, err)
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: "vx4242", MTU: 1450},
		VxlanId:      4242,
		VtepDevIndex: underlay.Attrs().Index,
		SrcAddr:      net.ParseIP(local),
		Group:        net.ParseIP(remote), // unicast remote: point-to-point tunnel
		Port:         4789,
	}
	require.NoError(t, h.LinkAdd(vx))
	link, err := h.LinkByName("vx4242")
	require.NoError(t, err)
	addr, err := netlink.ParseAddr(overlay)
	require.NoError(t, err)
	require.NoError(t, h.AddrAdd(link, addr))
	require.NoError(t, h.LinkSetUp(link))
}

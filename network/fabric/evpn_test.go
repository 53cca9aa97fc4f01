package fabric_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/fabric"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/nettest"
	"github.com/virtplane/virtplane/network/vxlan"
)

const frrConf = `frr defaults datacenter
hostname rr
log file %[1]s/bgpd.log
!
router bgp 65000
 bgp router-id 10.251.0.1
 bgp cluster-id 10.251.0.1
 no bgp default ipv4-unicast
 coalesce-time 100
 neighbor EDGE peer-group
 neighbor EDGE remote-as 65000
 bgp listen range 10.251.0.0/24 peer-group EDGE
 !
 address-family l2vpn evpn
  neighbor EDGE activate
  neighbor EDGE route-reflector-client
 exit-address-family
exit
!
`

func startFRR(t *testing.T, r testenv.Routing, rr *testenv.Netns) func(cmd string) string {
	dir := t.TempDir()
	conf := filepath.Join(dir, "frr.conf")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, frrConf, dir), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := rr.Command(ctx, r.FRRBgpd, "-Z", "-S", "-l", "10.251.0.1", "-f", conf, "--vty_socket", dir,
		"-i", filepath.Join(dir, "bgpd.pid"), "-u", "root", "-g", "root")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	vtysh := func(c string) string {
		out, _ := exec.Command(r.Vtysh, "--vty_socket", dir, "-d", "bgpd", "-c", c).CombinedOutput()
		return string(out)
	}
	eventually(t, "bgpd vty", func() (bool, string) {
		out := vtysh("show bgp summary")
		return !strings.Contains(out, "failed") && !strings.Contains(out, "not running"), out
	})
	return vtysh
}

// TestEVPNWithFRRReflector: two hosts run GoBGP speakers in EVPN mode with
// FRR bgpd as route reflector. Each announces a type-3 route for VNI 100 and
// a type-2 route for its VM; the routes reflected to the other host become
// the FDB of its VxLAN device (learning off), and the VMs reach each other.
func TestEVPNWithFRRReflector(t *testing.T) {
	r := testenv.RequireRouting(t)
	rr, hosts := fabricNet(t, 2)
	vtysh := startFRR(t, r, rr)

	const vni = 100
	macs := []string{"02:ee:00:00:00:01", "02:ee:00:00:00:02"}
	var sp []*speaker
	var vms []*testenv.Netns
	for i, h := range hosts {
		self := netip.MustParseAddr(fmt.Sprintf("10.251.0.%d", i+2))
		vm := testenv.NewNetns(t)
		testenv.Veth(t, vm, "eth0", fmt.Sprintf("192.168.7.%d/24", i+1), h, "vm0p", "")
		vm.Run(t, "ip", "link", "set", "eth0", "address", macs[i])
		vms = append(vms, vm)
		d, err := vxlan.Desired(vxlan.Underlay{Local: self, Device: "eth0"}, []vxlan.Network{{Name: "evpn", VNI: vni, Ports: []string{"vm0p"}}}, false)
		require.NoError(t, err)
		host, err := hostnet.New(hostnet.Config{Netlink: nettest.Handle(t, h.Name)})
		require.NoError(t, err)
		_, err = host.Apply(t.Context(), d)
		require.NoError(t, err)

		s := startSpeaker(t, h, fabric.Config{ASN: 65000, RouterID: self, Reflectors: []netip.Addr{netip.MustParseAddr("10.251.0.1")}, NextHop: self, EVPN: true})
		sp = append(sp, s)
		mac, _ := net.ParseMAC(macs[i])
		s.do(request{Op: "announce-evpn", EVPN: fabric.EVPNRoute{Type: 3, VNI: vni}})
		s.do(request{Op: "announce-evpn", EVPN: fabric.EVPNRoute{Type: 2, VNI: vni, MAC: mac, IP: netip.MustParseAddr(fmt.Sprintf("192.168.7.%d", i+1))}})
	}
	eventually(t, "reflector holds both hosts' type-2 and type-3 routes", func() (bool, string) {
		out := vtysh("show bgp l2vpn evpn")
		return strings.Contains(out, macs[0]) && strings.Contains(out, macs[1]) && strings.Count(out, "[3]:") >= 2, out
	})
	for i, s := range sp {
		other := netip.MustParseAddr(fmt.Sprintf("10.251.0.%d", 3-i))
		eventually(t, fmt.Sprintf("host %d learned the other's routes", i), func() (bool, string) {
			got := s.do(request{Op: "learned-evpn"}).EVPN
			return len(got) == 2 && got[0].NextHop == other && got[1].NextHop == other, fmt.Sprintf("%+v", got)
		})
		self := netip.MustParseAddr(fmt.Sprintf("10.251.0.%d", i+2))
		added := s.do(request{Op: "sync-fdb", Device: fmt.Sprintf("vx%d", vni), EVPN: fabric.EVPNRoute{VNI: vni}, Local: self}).Added
		assert.Equal(t, 2, added, "flood entry and the remote VM's MAC")
		fdb := hosts[i].Run(t, "bridge", "fdb", "show", "dev", fmt.Sprintf("vx%d", vni))
		assert.Contains(t, fdb, "00:00:00:00:00:00 dst "+other.String())
		assert.Contains(t, fdb, macs[1-i]+" dst "+other.String())
	}
	out := vms[0].Run(t, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.168.7.2")
	assert.Contains(t, out, "3 received")
	assert.Contains(t, vms[0].Run(t, "ip", "neigh", "show", "192.168.7.2"), macs[1])

	// VM 1 goes: its type-2 route is withdrawn and host 0 drops the MAC entry.
	mac1, _ := net.ParseMAC(macs[1])
	sp[1].do(request{Op: "withdraw-evpn", EVPN: fabric.EVPNRoute{Type: 2, VNI: vni, MAC: mac1, IP: netip.MustParseAddr("192.168.7.2")}})
	eventually(t, "withdrawal reflected to host 0", func() (bool, string) {
		got := sp[0].do(request{Op: "learned-evpn"}).EVPN
		return len(got) == 1 && got[0].Type == 3, fmt.Sprintf("%+v", got)
	})
	resp := sp[0].do(request{Op: "sync-fdb", Device: fmt.Sprintf("vx%d", vni), EVPN: fabric.EVPNRoute{VNI: vni}, Local: netip.MustParseAddr("10.251.0.2")})
	assert.Equal(t, [2]int{0, 1}, [2]int{resp.Added, resp.Removed})
	assert.NotContains(t, hosts[0].Run(t, "bridge", "fdb", "show", "dev", fmt.Sprintf("vx%d", vni)), macs[1]+" dst", "the VxLAN entry is gone (the bridge may still have learned the MAC)")
}

package fabric_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/fabric"
	"github.com/virtplane/virtplane/network/fabric/fabrictest"
	"github.com/virtplane/virtplane/network/nettest"
	"github.com/virtplane/virtplane/network/routing"
)

// fabricNet: a reflector namespace with bridge fab (10.251.0.1/24,
// fd00:251::1/64) and n host namespaces on it (10.251.0.2.., fd00:251::2..).
func fabricNet(t *testing.T, n int) (*testenv.Netns, []*testenv.Netns) {
	rr := testenv.NewNetns(t)
	rr.Run(t, "ip", "link", "add", "fab", "type", "bridge")
	rr.Run(t, "ip", "addr", "add", "10.251.0.1/24", "dev", "fab")
	rr.Run(t, "ip", "addr", "add", "fd00:251::1/64", "dev", "fab", "nodad")
	rr.Run(t, "ip", "link", "set", "fab", "up")
	var hosts []*testenv.Netns
	for i := range n {
		h := testenv.NewNetns(t)
		testenv.Veth(t, rr, fmt.Sprintf("hv%d", i), "", h, "eth0", fmt.Sprintf("10.251.0.%d/24", i+2))
		h.Run(t, "ip", "addr", "add", fmt.Sprintf("fd00:251::%d/64", i+2), "dev", "eth0", "nodad")
		rr.Run(t, "ip", "link", "set", fmt.Sprintf("hv%d", i), "master", "fab")
		hosts = append(hosts, h)
	}
	return rr, hosts
}

const birdConf = `log "%[1]s/bird.log" all;
router id 10.251.0.1;
protocol device { }
template bgp hv {
  local 10.251.0.1 as 65000;
  direct;
  rr client;
  rr cluster id 10.251.0.1;
  hold time 9;
  keepalive time 3;
  connect retry time 1;
  ipv4 { import all; export all; gateway direct; };
  ipv6 { import all; export all; gateway direct; };
}
protocol bgp hv1 from hv { neighbor 10.251.0.2 as 65000; }
protocol bgp hv2 from hv { neighbor 10.251.0.3 as 65000; }
`

func startBird(t *testing.T, r testenv.Routing, rr *testenv.Netns) func(args ...string) string {
	dir := t.TempDir()
	conf, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, birdConf, dir), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := rr.Command(ctx, r.Bird, "-f", "-c", conf, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	birdc := func(args ...string) string {
		out, _ := exec.Command(r.Birdc, append([]string{"-s", sock}, args...)...).CombinedOutput()
		return string(out)
	}
	eventually(t, "bird control socket", func() (bool, string) {
		out := birdc("show", "status")
		return strings.Contains(out, "Daemon is up"), out
	})
	return birdc
}

// TestFabricBIRDReflector: GoBGP speakers on two hosts peer with BIRD as
// route reflector; each VM /32 and /128 appears on the reflector and on the
// other host, and disappears when withdrawn (VM stopped or migrated) and
// when the speaker stops.
func TestFabricBIRDReflector(t *testing.T) {
	r := testenv.RequireRouting(t)
	rr, hosts := fabricNet(t, 2)
	birdc := startBird(t, r, rr)

	var sp []*speaker
	for i, h := range hosts {
		sp = append(sp, startSpeaker(t, h, fabric.Config{
			ASN: 65000, RouterID: netip.MustParseAddr(fmt.Sprintf("10.251.0.%d", i+2)),
			Reflectors: []netip.Addr{netip.MustParseAddr("10.251.0.1")},
			NextHop:    netip.MustParseAddr(fmt.Sprintf("10.251.0.%d", i+2)),
			NextHopV6:  netip.MustParseAddr(fmt.Sprintf("fd00:251::%d", i+2)),
		}))
	}
	for i, s := range sp {
		eventually(t, fmt.Sprintf("host %d session established", i), func() (bool, string) {
			n := s.do(request{Op: "established"}).Established
			return n == 1, birdc("show", "protocols")
		})
	}
	vm4, vm6 := netip.MustParsePrefix("10.200.0.5/32"), netip.MustParsePrefix("fd00:200::5/128")
	sp[0].do(request{Op: "announce", Prefix: vm4})
	sp[0].do(request{Op: "announce", Prefix: vm6})
	sp[1].do(request{Op: "announce", Prefix: netip.MustParsePrefix("10.200.0.6/32")})

	eventually(t, "reflector has the VM routes", func() (bool, string) {
		out := birdc("show", "route")
		return strings.Contains(out, "10.200.0.5/32") && strings.Contains(out, "fd00:200::5/128") && strings.Contains(out, "10.200.0.6/32"), out
	})
	out := birdc("show", "route", "for", "10.200.0.5")
	assert.Contains(t, out, "via 10.251.0.2")
	eventually(t, "host 1 learned host 0's VM", func() (bool, string) {
		got := sp[1].do(request{Op: "learned"}).Routes
		return contains(got, fabric.Route{Prefix: vm4, NextHop: netip.MustParseAddr("10.251.0.2")}) &&
			contains(got, fabric.Route{Prefix: vm6, NextHop: netip.MustParseAddr("fd00:251::2")}), fmt.Sprint(got)
	})
	learned0 := sp[0].do(request{Op: "learned"}).Routes
	assert.Equal(t, []fabric.Route{{Prefix: netip.MustParsePrefix("10.200.0.6/32"), NextHop: netip.MustParseAddr("10.251.0.3")}}, learned0)

	// The check address (the reflector's address stands for the gateway).
	reach := sp[0].do(request{Op: "check", Addr: netip.MustParseAddr("10.251.0.1")}).Reachability
	assert.True(t, reach.Reachable)
	reach = sp[0].do(request{Op: "check", Addr: netip.MustParseAddr("10.251.0.99")}).Reachability
	assert.False(t, reach.Reachable)

	// The VM migrates away from host 0: withdrawn everywhere.
	sp[0].do(request{Op: "withdraw", Prefix: vm4})
	eventually(t, "withdrawal reaches the reflector and host 1", func() (bool, string) {
		out := birdc("show", "route")
		got := sp[1].do(request{Op: "learned"}).Routes
		return !strings.Contains(out, "10.200.0.5/32") && !contains(got, fabric.Route{Prefix: vm4, NextHop: netip.MustParseAddr("10.251.0.2")}), out
	})
	// Host 0's speaker stops: its remaining routes go.
	sp[0].stop()
	eventually(t, "stop withdraws the rest", func() (bool, string) {
		out := birdc("show", "route")
		return !strings.Contains(out, "fd00:200::5/128") && strings.Contains(out, "10.200.0.6/32"), out
	})
}

func contains(rs []fabric.Route, r fabric.Route) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func TestStartRejectsBadConfig(t *testing.T) {
	good := fabric.Config{ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.1"), Reflectors: []netip.Addr{netip.MustParseAddr("10.0.0.254")}, NextHop: netip.MustParseAddr("10.0.0.1")}
	for name, mut := range map[string]func(*fabric.Config){
		"asn":        func(c *fabric.Config) { c.ASN = 0 },
		"router id":  func(c *fabric.Config) { c.RouterID = netip.MustParseAddr("fd00::1") },
		"reflectors": func(c *fabric.Config) { c.Reflectors = nil },
		"next hop":   func(c *fabric.Config) { c.NextHop = netip.Addr{} },
		"v6 hop":     func(c *fabric.Config) { c.NextHopV6 = netip.MustParseAddr("10.0.0.1") },
	} {
		c := good
		mut(&c)
		_, err := fabric.Start(t.Context(), c)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, name)
	}
}

func TestFakeAnnouncer(t *testing.T) {
	f := fabric.NewFake()
	p := netip.MustParsePrefix("10.0.0.5/32")
	require.NoError(t, f.Announce(t.Context(), p))
	f.FailNext(fmt.Errorf("peer down"))
	assert.ErrorIs(t, f.Withdraw(t.Context(), p), virtplane.ErrUnavailable)
	got, err := f.Announced(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{p}, got)
	require.NoError(t, f.Withdraw(t.Context(), p))
	assert.ErrorIs(t, f.Announce(t.Context(), netip.MustParsePrefix("10.0.0.0/24")), virtplane.ErrInvalidArgument)
	assert.Equal(t, []string{"announce 10.0.0.5/32", "withdraw 10.0.0.5/32", "withdraw 10.0.0.5/32"}, f.Calls())
}

func TestConformanceFake(t *testing.T) {
	fabrictest.Run(t, func(t *testing.T) fabric.Announcer { return fabric.NewFake() })
}

// TestConformanceSpeaker runs the suite on a real speaker whose reflector
// (a closed port on loopback) never answers: announcing does not wait for
// sessions.
func TestConformanceSpeaker(t *testing.T) {
	fabrictest.Run(t, func(t *testing.T) fabric.Announcer {
		sp, err := fabric.Start(t.Context(), fabric.Config{
			ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.1"), NextHop: netip.MustParseAddr("10.0.0.1"),
			Reflectors: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, ReflectorPort: 1,
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = sp.Stop(context.Background()) })
		return sp
	})
}

// TestFabricVMToVM: the whole IP fabric. Each host routes its VM (routed
// mode: host route to the port, gateway on the port), announces the VM's /32
// through BIRD, and installs the routes it learns into its kernel; a VM on
// host 0 then reaches the VM on host 1. When VM 1 is withdrawn, host 0
// removes the route and the path is gone.
func TestFabricVMToVM(t *testing.T) {
	r := testenv.RequireRouting(t)
	rr, hosts := fabricNet(t, 2)
	birdc := startBird(t, r, rr)
	var sp []*speaker
	var vms []*testenv.Netns
	for i, h := range hosts {
		self := netip.MustParseAddr(fmt.Sprintf("10.251.0.%d", i+2))
		vmAddr := netip.MustParseAddr(fmt.Sprintf("10.200.0.%d", i+5))
		vm := testenv.NewNetns(t)
		testenv.Veth(t, vm, "eth0", vmAddr.String()+"/32", h, "vm0p", "")
		vm.Run(t, "ip", "route", "add", "172.31.1.1", "dev", "eth0")
		vm.Run(t, "ip", "route", "add", "default", "via", "172.31.1.1")
		h.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		router, err := routing.New(nettest.Handle(t, h.Name), routing.Config{GatewayV4: netip.MustParseAddr("172.31.1.1")})
		require.NoError(t, err)
		_, err = router.Apply(t.Context(), []routing.VM{{Port: "vm0p", IPv4: []netip.Addr{vmAddr}}})
		require.NoError(t, err)

		s := startSpeaker(t, h, fabric.Config{ASN: 65000, RouterID: self, Reflectors: []netip.Addr{netip.MustParseAddr("10.251.0.1")}, NextHop: self})
		s.do(request{Op: "announce", Prefix: netip.PrefixFrom(vmAddr, 32)})
		sp, vms = append(sp, s), append(vms, vm)
	}
	for i, s := range sp {
		eventually(t, fmt.Sprintf("host %d learned the other VM", i), func() (bool, string) {
			return len(s.do(request{Op: "learned"}).Routes) == 1, birdc("show", "route")
		})
		resp := s.do(request{Op: "sync-kernel"})
		assert.Equal(t, 1, resp.Added)
		assert.Zero(t, s.do(request{Op: "sync-kernel"}).Added, "second sync changes nothing")
	}
	assert.Contains(t, hosts[0].Run(t, "ip", "route", "show", "10.200.0.6"), "via 10.251.0.3")
	assert.Contains(t, vms[0].Run(t, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.200.0.6"), "2 received")

	sp[1].do(request{Op: "withdraw", Prefix: netip.MustParsePrefix("10.200.0.6/32")})
	eventually(t, "host 0 forgets VM 1", func() (bool, string) {
		got := sp[0].do(request{Op: "learned"}).Routes
		return len(got) == 0, fmt.Sprint(got)
	})
	assert.Equal(t, 1, sp[0].do(request{Op: "sync-kernel"}).Removed)
	assert.NotContains(t, hosts[0].Run(t, "ip", "route", "show"), "10.200.0.6")
	assert.Error(t, vms[0].Command(t.Context(), "ping", "-c", "1", "-W", "1", "10.200.0.6").Run())
}

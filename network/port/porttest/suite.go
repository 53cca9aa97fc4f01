// Package netporttest is the conformance suite of netport.Ports: the Fake,
// the simulated nodes' durable ports and the kernel Host all pass it.
//
//	porttest.Run(t, func(t *testing.T) porttest.Harness {
//		return porttest.Harness{Ports: netport.NewFake()}
//	})
package porttest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/firewall"
	netport "github.com/virtplane/virtplane/network/port"
)

// Harness is one fresh node's ports.
type Harness struct {
	Ports netport.Ports
	// Plug makes the device of a port, as the hypervisor does when the VM
	// starts, and Unplug deletes it, as when the VM stops; nil for
	// implementations that do not model devices.
	Plug, Unplug func(t *testing.T, name string)
}

// Bridges are the bridge names the suite uses.
var Bridges = [2]string{"vptsuite-a", "vptsuite-b"}

// spec is the port of VM id on bridge b.
func spec(id, b string) netport.Spec {
	return netport.ForVM(id, b, []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")})
}

// Gateway is the IPv4 gateway of the suite's routed ports, and
// GatewayV6 their IPv6 one.
var (
	Gateway   = netip.MustParseAddr("192.0.2.1")
	GatewayV6 = netip.MustParseAddr("fe80::1")
)

// VNI is the VxLAN network of the suite's VXLAN ports, Local the node's
// tunnel endpoint and Peers the other nodes'.
var (
	VNI   = 4711
	Local = netip.MustParseAddr("198.18.0.1")
	Peers = []netip.Addr{netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("198.18.0.2")}
)

// routed is the routed port of VM id.
func routed(id string) netport.Spec {
	s := spec(id, "")
	s.Mode, s.GatewayV4, s.GatewayV6 = netport.ModeRouted, Gateway, GatewayV6
	return s
}

// overVXLAN is the VXLAN port of VM id in network vni.
func overVXLAN(id string, vni int) netport.Spec {
	s := spec(id, "")
	s.Mode = netport.ModeVXLAN
	s.VXLAN = &netport.VXLAN{VNI: vni, Local: Local, Peers: Peers}
	return s
}

func list(t *testing.T, p netport.Ports) []netport.Spec {
	t.Helper()
	got, err := p.List(t.Context())
	require.NoError(t, err)
	return got
}

func assertPorts(t *testing.T, p netport.Ports, want ...netport.Spec) {
	t.Helper()
	got := list(t, p)
	require.Len(t, got, len(want), "ports: %v", got)
	for i := range want {
		assert.True(t, want[i].Equal(got[i]), "port %d: want %v, got %v", i, want[i], got[i])
	}
}

// Run runs the suite; newHarness returns a node without ports.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("SetupListTeardown", func(t *testing.T) {
		h := newHarness(t)
		ctx := t.Context()
		assert.Empty(t, list(t, h.Ports))
		s := spec("vm-1", Bridges[0])
		s.MAC = "02:AB:CD:00:00:01" // upper case: stored normalised
		require.NoError(t, h.Ports.Setup(ctx, s))
		got := list(t, h.Ports)
		require.Len(t, got, 1)
		assert.Equal(t, "02:ab:cd:00:00:01", got[0].MAC)
		assert.Equal(t, s.Name, got[0].Name)
		assert.Equal(t, "vm-1", got[0].VMID)
		assert.Equal(t, Bridges[0], got[0].Bridge)
		assert.Equal(t, s.Normalize().Addresses, got[0].Addresses)
		require.NoError(t, h.Ports.Teardown(ctx, s.Name))
		assert.Empty(t, list(t, h.Ports))
	})

	t.Run("SetupIsIdempotent", func(t *testing.T) {
		h := newHarness(t)
		s := spec("vm-1", Bridges[0])
		for range 3 {
			require.NoError(t, h.Ports.Setup(t.Context(), s))
		}
		assertPorts(t, h.Ports, s)
	})

	t.Run("SetupReplaces", func(t *testing.T) {
		h := newHarness(t)
		ctx := t.Context()
		s := spec("vm-1", Bridges[0])
		require.NoError(t, h.Ports.Setup(ctx, s))
		s.Addresses = []netip.Addr{netip.MustParseAddr("198.51.100.7")}
		s.InKbit, s.OutKbit = 10_000, 5_000
		s.BlockOut = []firewall.PortRange{{Protocol: "tcp", First: 25}}
		require.NoError(t, h.Ports.Setup(ctx, s))
		assertPorts(t, h.Ports, s)
		s.Bridge = Bridges[1]
		require.NoError(t, h.Ports.Setup(ctx, s), "a port moves to another bridge")
		assertPorts(t, h.Ports, s)
	})

	t.Run("NameOfAnotherVMConflicts", func(t *testing.T) {
		h := newHarness(t)
		ctx := t.Context()
		s := spec("vm-1", Bridges[0])
		require.NoError(t, h.Ports.Setup(ctx, s))
		other := s
		other.VMID = "vm-2"
		err := h.Ports.Setup(ctx, other)
		assert.ErrorIs(t, err, virtplane.ErrConflict)
		assertPorts(t, h.Ports, s)
	})

	t.Run("InvalidSpecs", func(t *testing.T) {
		h := newHarness(t)
		for name, mutate := range map[string]func(*netport.Spec){
			"empty name":         func(s *netport.Spec) { s.Name = "" },
			"name too long":      func(s *netport.Spec) { s.Name = "vpt0123456789abc" },
			"name with slash":    func(s *netport.Spec) { s.Name = "vpt/x" },
			"dot name":           func(s *netport.Spec) { s.Name = ".." },
			"no vm":              func(s *netport.Spec) { s.VMID = "" },
			"no bridge":          func(s *netport.Spec) { s.Bridge = "" },
			"bridge is the port": func(s *netport.Spec) { s.Bridge = s.Name },
			"bad mac":            func(s *netport.Spec) { s.MAC = "02:00:00:00:00" },
			"multicast mac":      func(s *netport.Spec) { s.MAC = "03:00:00:00:00:01" },
			"zero address":       func(s *netport.Spec) { s.Addresses = []netip.Addr{{}} },
			"unspecified":        func(s *netport.Spec) { s.Addresses = []netip.Addr{netip.IPv4Unspecified()} },
			"zoned address":      func(s *netport.Spec) { s.Addresses = []netip.Addr{netip.MustParseAddr("fe80::1%eth0")} },
			"bad port range":     func(s *netport.Spec) { s.BlockIn = []firewall.PortRange{{Protocol: "sctp", First: 1}} },
			"rate too low":       func(s *netport.Spec) { s.InKbit = 1 },
			"rate too high":      func(s *netport.Spec) { s.OutKbit = 1 << 40 },
			"unknown mode":       func(s *netport.Spec) { s.Mode = "bgp" },
			"bridge gateway":     func(s *netport.Spec) { s.GatewayV4 = Gateway },
			"bridge vxlan":       func(s *netport.Spec) { s.VXLAN = &netport.VXLAN{VNI: VNI, Local: Local} },
			"routed no gateway":  func(s *netport.Spec) { *s = routed("vm-1"); s.GatewayV4 = netip.Addr{} },
			"routed v6 gateway4": func(s *netport.Spec) { *s = routed("vm-1"); s.GatewayV4 = GatewayV6 },
			"routed global gw6":  func(s *netport.Spec) { *s = routed("vm-1"); s.GatewayV6 = netip.MustParseAddr("2001:db8::1") },
			"routed bridge":      func(s *netport.Spec) { *s = routed("vm-1"); s.Bridge = Bridges[0] },
			"routed gw is vm":    func(s *netport.Spec) { *s = routed("vm-1"); s.Addresses = []netip.Addr{Gateway} },
			"routed link-local":  func(s *netport.Spec) { *s = routed("vm-1"); s.Addresses = []netip.Addr{netip.MustParseAddr("fe80::5")} },
			"vxlan missing":      func(s *netport.Spec) { *s = overVXLAN("vm-1", VNI); s.VXLAN = nil },
			"vni zero":           func(s *netport.Spec) { *s = overVXLAN("vm-1", 0) },
			"vni too large":      func(s *netport.Spec) { *s = overVXLAN("vm-1", netport.MaxVNI+1) },
			"vxlan no local":     func(s *netport.Spec) { *s = overVXLAN("vm-1", VNI); s.VXLAN.Local = netip.Addr{} },
			"vxlan bad peer": func(s *netport.Spec) {
				*s = overVXLAN("vm-1", VNI)
				s.VXLAN.Peers = []netip.Addr{netip.MustParseAddr("2001:db8::2")}
			},
			"vxlan other bridge": func(s *netport.Spec) { *s = overVXLAN("vm-1", VNI); s.Bridge = Bridges[0] },
		} {
			t.Run(name, func(t *testing.T) {
				s := spec("vm-1", Bridges[0])
				mutate(&s)
				err := h.Ports.Setup(t.Context(), s)
				assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			})
		}
		assert.Empty(t, list(t, h.Ports), "nothing recorded for invalid specs")
		assert.ErrorIs(t, h.Ports.Teardown(t.Context(), "no/such"), virtplane.ErrInvalidArgument)
	})

	t.Run("TeardownIsIdempotent", func(t *testing.T) {
		h := newHarness(t)
		ctx := t.Context()
		require.NoError(t, h.Ports.Teardown(ctx, netport.TapName("never")))
		s := spec("vm-1", Bridges[0])
		require.NoError(t, h.Ports.Setup(ctx, s))
		require.NoError(t, h.Ports.Teardown(ctx, s.Name))
		require.NoError(t, h.Ports.Teardown(ctx, s.Name))
		assert.Empty(t, list(t, h.Ports))
	})

	t.Run("PortsShareABridge", func(t *testing.T) {
		h := newHarness(t)
		ctx := t.Context()
		a, b, c := spec("vm-a", Bridges[0]), spec("vm-b", Bridges[0]), spec("vm-c", Bridges[1])
		for _, s := range []netport.Spec{a, b, c} {
			require.NoError(t, h.Ports.Setup(ctx, s))
			if h.Plug != nil {
				h.Plug(t, s.Name)
				require.NoError(t, h.Ports.Setup(ctx, s))
			}
		}
		require.NoError(t, h.Ports.Teardown(ctx, a.Name))
		require.NoError(t, h.Ports.Setup(ctx, b), "the bridge stays for the other port")
		want := []netport.Spec{b, c}
		if b.Name > c.Name {
			want = []netport.Spec{c, b}
		}
		assertPorts(t, h.Ports, want...)
		require.NoError(t, h.Ports.Teardown(ctx, b.Name))
		require.NoError(t, h.Ports.Teardown(ctx, c.Name))
		assert.Empty(t, list(t, h.Ports))
	})

	t.Run("DeviceComesAndGoes", func(t *testing.T) {
		// Without a device model the same calls run; only the plugs are no-ops.
		h := newHarness(t)
		plug, unplug := func(string) {}, func(string) {}
		if h.Plug != nil {
			plug, unplug = func(n string) { h.Plug(t, n) }, func(n string) { h.Unplug(t, n) }
		}
		ctx := t.Context()
		s := spec("vm-1", Bridges[0])
		s.InKbit, s.OutKbit = 20_000, 10_000
		require.NoError(t, h.Ports.Setup(ctx, s), "before the VM starts")
		plug(s.Name)
		require.NoError(t, h.Ports.Setup(ctx, s), "after it started")
		require.NoError(t, h.Ports.Setup(ctx, s), "again")
		unplug(s.Name)
		require.NoError(t, h.Ports.Setup(ctx, s), "while it is stopped")
		plug(s.Name)
		require.NoError(t, h.Ports.Setup(ctx, s), "started again")
		assertPorts(t, h.Ports, s)
		require.NoError(t, h.Ports.Teardown(ctx, s.Name), "while it runs")
		unplug(s.Name)
		require.NoError(t, h.Ports.Setup(ctx, s))
		require.NoError(t, h.Ports.Teardown(ctx, s.Name), "after the device went")
		assert.Empty(t, list(t, h.Ports))
	})

	t.Run("CanceledContext", func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.Error(t, h.Ports.Setup(ctx, spec("vm-1", Bridges[0])))
		assert.Empty(t, list(t, h.Ports))
	})

	t.Run("ListIsSorted", func(t *testing.T) {
		h := newHarness(t)
		var want []netport.Spec
		for _, id := range []string{"vm-3", "vm-1", "vm-2", "vm-4"} {
			s := spec(id, Bridges[0])
			require.NoError(t, h.Ports.Setup(t.Context(), s))
			want = append(want, s)
		}
		got := list(t, h.Ports)
		require.Len(t, got, len(want))
		for i := 1; i < len(got); i++ {
			assert.Less(t, got[i-1].Name, got[i].Name)
		}
	})

	t.Run("Routed", func(t *testing.T) {
		h := newHarness(t)
		ctx := t.Context()
		a, b := routed("vm-a"), routed("vm-b")
		b.Addresses = []netip.Addr{netip.MustParseAddr("192.0.2.11")}
		for _, s := range []netport.Spec{a, b} {
			require.NoError(t, h.Ports.Setup(ctx, s), "before the device exists")
			if h.Plug != nil {
				h.Plug(t, s.Name)
			}
			require.NoError(t, h.Ports.Setup(ctx, s), "with the device")
			require.NoError(t, h.Ports.Setup(ctx, s), "again")
		}
		got := list(t, h.Ports)
		require.Len(t, got, 2)
		for _, p := range got {
			assert.Equal(t, netport.ModeRouted, p.Mode, "the mode is recorded")
			assert.Empty(t, p.Bridge)
			assert.Equal(t, Gateway, p.GatewayV4)
			assert.Equal(t, GatewayV6, p.GatewayV6)
		}
		other := routed("vm-c")
		other.Addresses = []netip.Addr{netip.MustParseAddr("192.0.2.12")}
		other.GatewayV4 = netip.MustParseAddr("192.0.2.254")
		assert.ErrorIs(t, h.Ports.Setup(ctx, other), virtplane.ErrConflict, "routed ports of a node share the gateways")
		require.NoError(t, h.Ports.Teardown(ctx, a.Name))
		assertPorts(t, h.Ports, b)
		require.NoError(t, h.Ports.Teardown(ctx, b.Name))
		other.Addresses = nil
		require.NoError(t, h.Ports.Setup(ctx, other), "with no routed port left, other gateways are fine")
		require.NoError(t, h.Ports.Teardown(ctx, other.Name))
		assert.Empty(t, list(t, h.Ports))
	})

	t.Run("VXLAN", func(t *testing.T) {
		h := newHarness(t)
		ctx := t.Context()
		a, b, c := overVXLAN("vm-a", VNI), overVXLAN("vm-b", VNI), overVXLAN("vm-c", VNI+1)
		a.VXLAN.Peers = append(a.VXLAN.Peers, Local, Peers[0]) // itself and a duplicate: dropped
		for _, s := range []netport.Spec{a, b, c} {
			require.NoError(t, h.Ports.Setup(ctx, s))
			if h.Plug != nil {
				h.Plug(t, s.Name)
				require.NoError(t, h.Ports.Setup(ctx, s))
			}
		}
		got := list(t, h.Ports)
		require.Len(t, got, 3)
		for _, p := range got {
			assert.Equal(t, netport.ModeVXLAN, p.Mode, "the mode is recorded")
			require.NotNil(t, p.VXLAN)
			assert.Equal(t, netport.VXLANBridge(p.VXLAN.VNI), p.Bridge, "the network's bridge")
			assert.Equal(t, Local, p.VXLAN.Local)
			assert.Equal(t, []netip.Addr{Peers[1], Peers[0]}, p.VXLAN.Peers, "sorted, without duplicates or the node itself")
		}
		other := overVXLAN("vm-d", VNI)
		other.VXLAN.Local = netip.MustParseAddr("198.18.0.9")
		assert.ErrorIs(t, h.Ports.Setup(ctx, other), virtplane.ErrConflict, "a node has one vtep address")
		require.NoError(t, h.Ports.Teardown(ctx, a.Name))
		require.NoError(t, h.Ports.Setup(ctx, b), "the network stays for the other port")
		require.NoError(t, h.Ports.Teardown(ctx, b.Name))
		require.NoError(t, h.Ports.Teardown(ctx, c.Name))
		assert.Empty(t, list(t, h.Ports))
	})

	t.Run("ModeChanges", func(t *testing.T) {
		h := newHarness(t)
		ctx := t.Context()
		s := spec("vm-1", Bridges[0])
		require.NoError(t, h.Ports.Setup(ctx, s))
		if h.Plug != nil {
			h.Plug(t, s.Name)
		}
		for _, next := range []netport.Spec{routed("vm-1"), overVXLAN("vm-1", VNI), spec("vm-1", Bridges[1]), routed("vm-1")} {
			require.NoError(t, h.Ports.Setup(ctx, next), "to %s", next.Mode)
			assertPorts(t, h.Ports, next)
		}
		require.NoError(t, h.Ports.Teardown(ctx, s.Name))
		assert.Empty(t, list(t, h.Ports))
	})
}

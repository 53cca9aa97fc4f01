// Package netporttest is the conformance suite of netport.Ports: the Fake,
// the simulated nodes' durable ports and the kernel Host all pass it.
//
//	netporttest.Run(t, func(t *testing.T) netporttest.Harness {
//		return netporttest.Harness{Ports: netport.NewFake()}
//	})
package netporttest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/netport"
	"github.com/virtplane/virtplane/network/firewall"
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
}

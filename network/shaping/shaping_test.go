package shaping_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/nettest"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/network/shaping/shapingtest"
)

func TestMain(m *testing.M) {
	nettest.RunTrafficIfHelper()
	os.Exit(m.Run())
}

type setup struct {
	host, vm     *testenv.Netns
	toHost, toVM *nettest.Server
	shaper       *shaping.Shaper
}

// vmBehindPort: a VM (10.73.0.2) behind port vm1p of a host (10.73.0.1),
// each running a TCP sink.
func vmBehindPort(t testing.TB) setup {
	host, vm := testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, vm, "eth0", "10.73.0.2/24", host, "vm1p", "10.73.0.1/24")
	s, err := shaping.New(nettest.Handle(t, host.Name))
	require.NoError(t, err)
	return setup{host: host, vm: vm, shaper: s,
		toHost: nettest.Serve(t, host.Name, "10.73.0.1:9000"), toVM: nettest.Serve(t, vm.Name, "10.73.0.2:9000")}
}

// measure streams for d in both directions and returns the rates the
// receivers saw, in Mbit/s: what the VM sends, what it receives.
func (s setup) measure(t testing.TB, d time.Duration) (out, in float64) {
	nettest.Send(t, s.vm.Name, "10.73.0.1:9000", d)
	out = s.toHost.Next(t).Mbps()
	nettest.Send(t, s.host.Name, "10.73.0.2:9000", d)
	in = s.toVM.Next(t).Mbps()
	return out, in
}

// TestShaping20Mbit: a 20 Mbit/s limit in both directions is installed
// (HTB on the port, ingress redirected to an IFB with TBF), traffic above it
// is cut down to about the limit, and removing it restores the line rate.
// The measured rates are logged (and reported by BenchmarkShaped20Mbit).
func TestShaping20Mbit(t *testing.T) {
	env := vmBehindPort(t)
	host, s := env.host, env.shaper
	freeOut, freeIn := env.measure(t, time.Second)
	t.Logf("unshaped: VM sends %.0f Mbit/s, receives %.0f Mbit/s", freeOut, freeIn)

	limit := shaping.Limit{Port: "vm1p", InKbit: 20_000, OutKbit: 20_000}
	changed, err := s.Apply(t.Context(), limit)
	require.NoError(t, err)
	assert.True(t, changed)
	changed, err = s.Apply(t.Context(), limit)
	require.NoError(t, err)
	assert.False(t, changed, "second Apply changes nothing")
	st, err := s.Current(t.Context(), "vm1p")
	require.NoError(t, err)
	assert.Equal(t, shaping.State{InKbit: 20_000, OutKbit: 20_000}, st)
	assert.Contains(t, host.Run(t, "tc", "qdisc", "show", "dev", "vm1p"), "qdisc htb 1: root")
	assert.Contains(t, host.Run(t, "tc", "class", "show", "dev", "vm1p"), "rate 20Mbit")
	assert.Contains(t, host.Run(t, "tc", "filter", "show", "dev", "vm1p", "ingress"), "Redirect to device "+shaping.IFBName("vm1p"))
	assert.Contains(t, host.Run(t, "tc", "qdisc", "show", "dev", shaping.IFBName("vm1p")), "rate 20Mbit")

	// The bar is ±15% of the limit. A busy machine can slow one
	// measurement down, so up to three are made; each must be far below the
	// line rate, and one must land within ±15% in each direction.
	within := func(r float64) bool { return r > 17 && r < 23 }
	var okOut, okIn bool
	for attempt := 0; attempt < 3 && !(okOut && okIn); attempt++ {
		out, in := env.measure(t, 3*time.Second)
		t.Logf("shaped at 20 Mbit/s: VM sends %.1f Mbit/s (%+.0f%%), receives %.1f Mbit/s (%+.0f%%)", out, (out/20-1)*100, in, (in/20-1)*100)
		assert.Less(t, out, freeOut/5)
		assert.Less(t, in, freeIn/5)
		assert.Less(t, out, 30.0)
		assert.Less(t, in, 30.0)
		okOut, okIn = okOut || within(out), okIn || within(in)
	}
	assert.True(t, okOut, "VM's sending rate within ±15% of 20 Mbit/s")
	assert.True(t, okIn, "VM's receiving rate within ±15% of 20 Mbit/s")

	// Change one direction only, then remove.
	changed, err = s.Apply(t.Context(), shaping.Limit{Port: "vm1p", InKbit: 50_000, OutKbit: 20_000})
	require.NoError(t, err)
	assert.True(t, changed)
	require.NoError(t, s.Remove(t.Context(), "vm1p"))
	st, err = s.Current(t.Context(), "vm1p")
	require.NoError(t, err)
	assert.Zero(t, st)
	assert.NotContains(t, host.Run(t, "ip", "link", "show"), shaping.IFBName("vm1p"))
	assert.NotContains(t, host.Run(t, "tc", "qdisc", "show", "dev", "vm1p"), "htb")
}

func TestLimitValidate(t *testing.T) {
	for name, l := range map[string]shaping.Limit{
		"port": {Port: ""},
		"high": {Port: "p", InKbit: 1 << 40},
		"low":  {Port: "p", OutKbit: 1},
	} {
		assert.ErrorIs(t, l.Validate(), virtplane.ErrInvalidArgument, name)
	}
	assert.NoError(t, shaping.Limit{Port: "vnet0", InKbit: 1000}.Validate())
}

// BenchmarkShaped20Mbit measures the rate a VM gets under a 20 Mbit/s limit
// in each direction, and the ratio to the target (1.0 is exact).
func BenchmarkShaped20Mbit(b *testing.B) {
	env := vmBehindPort(b)
	_, err := env.shaper.Apply(b.Context(), shaping.Limit{Port: "vm1p", InKbit: 20_000, OutKbit: 20_000})
	require.NoError(b, err)
	var out, in float64
	for b.Loop() {
		o, i := env.measure(b, 2*time.Second)
		out, in = out+o, in+i
	}
	n := float64(b.N)
	b.ReportMetric(out/n, "out-Mbit/s")
	b.ReportMetric(in/n, "in-Mbit/s")
	b.ReportMetric(out/n/20, "out/target")
	b.ReportMetric(in/n/20, "in/target")
}

func TestConformanceFake(t *testing.T) {
	shapingtest.Run(t, func(t *testing.T) (shaping.Limiter, string) { return shaping.NewFake("vnet0"), "vnet0" })
}

func TestConformanceTC(t *testing.T) {
	shapingtest.Run(t, func(t *testing.T) (shaping.Limiter, string) {
		ns := testenv.NewNetns(t)
		ns.Run(t, "ip", "link", "add", "vm1p", "type", "veth", "peer", "name", "vm1px")
		s, err := shaping.New(nettest.Handle(t, ns.Name))
		require.NoError(t, err)
		return s, "vm1p"
	})
}

// A port made again under the same name (the hypervisor's new tap after a
// restart) has lost its redirect: the outbound limit reads as none and
// Apply puts it back. A port that is gone is removed without error, IFB
// and all.
func TestNewTapAndGonePort(t *testing.T) {
	ns := testenv.NewNetns(t)
	ns.Run(t, "ip", "link", "add", "vm1p", "type", "veth", "peer", "name", "vm1px")
	s, err := shaping.New(nettest.Handle(t, ns.Name))
	require.NoError(t, err)
	ctx := t.Context()
	_, err = s.Apply(ctx, shaping.Limit{Port: "vm1p", InKbit: 10_000, OutKbit: 10_000})
	require.NoError(t, err)

	ns.Run(t, "ip", "link", "del", "vm1p")
	ns.Run(t, "ip", "link", "add", "vm1p", "type", "veth", "peer", "name", "vm1px")
	cur, err := s.Current(ctx, "vm1p")
	require.NoError(t, err)
	assert.Equal(t, shaping.State{}, cur, "the IFB left from the old port shapes nothing now")
	changed, err := s.Apply(ctx, shaping.Limit{Port: "vm1p", InKbit: 10_000, OutKbit: 10_000})
	require.NoError(t, err)
	assert.True(t, changed)
	cur, err = s.Current(ctx, "vm1p")
	require.NoError(t, err)
	assert.Equal(t, shaping.State{InKbit: 10_000, OutKbit: 10_000}, cur)
	assert.Contains(t, ns.Run(t, "tc", "filter", "show", "dev", "vm1p", "ingress"), "mirred")

	ns.Run(t, "ip", "link", "del", "vm1p")
	require.NoError(t, s.Remove(ctx, "vm1p"), "a port that is gone")
	assert.NotContains(t, ns.Run(t, "ip", "-o", "link"), shaping.IFBName("vm1p"), "its IFB went too")
	require.NoError(t, s.Remove(ctx, "vm1p"), "and again")
}

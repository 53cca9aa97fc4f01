package fabric_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/network/fabric"
)

// BenchmarkAnnounceWithdraw: announce and withdraw one VM /32 through the
// Speaker, beside the bare GoBGP AddPath/DeletePath calls it wraps. The
// ratio is Speaker time / bare time (the wrapper's validation and
// bookkeeping). No session is up: the reflector is a closed loopback port.
func BenchmarkAnnounceWithdraw(b *testing.B) {
	ctx := context.Background()
	sp, err := fabric.Start(ctx, fabric.Config{ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.1"), NextHop: netip.MustParseAddr("10.0.0.1"),
		Reflectors: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, ReflectorPort: 1})
	require.NoError(b, err)
	defer func() { _ = sp.Stop(ctx) }()

	bare := server.NewBgpServer(server.LoggerOption(slog.New(slog.NewTextHandler(io.Discard, nil)), nil))
	go bare.Serve()
	require.NoError(b, bare.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: "10.0.0.2", ListenPort: -1}}))
	defer bare.Stop()
	nh, _ := bgp.NewPathAttributeNextHop(netip.MustParseAddr("10.0.0.2"))

	p := netip.MustParsePrefix("10.200.0.5/32")
	var speakerTime, bareTime time.Duration
	for b.Loop() {
		start := time.Now()
		require.NoError(b, sp.Announce(ctx, p))
		require.NoError(b, sp.Withdraw(ctx, p))
		speakerTime += time.Since(start)

		b.StopTimer()
		start = time.Now()
		nlri, _ := bgp.NewIPAddrPrefix(p)
		path := &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh}}
		_, err := bare.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		require.NoError(b, err)
		require.NoError(b, bare.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}}))
		bareTime += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(speakerTime)/float64(bareTime), "speaker/bare")
}

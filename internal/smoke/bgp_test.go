package smoke

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
)

// TestGoBGPPeersWithBIRD runs BIRD 2 as an iBGP route reflector in its own
// namespace, peers an embedded GoBGP speaker with it over a veth link, and
// checks that the reflector learned the /32 the speaker announced.
func TestGoBGPPeersWithBIRD(t *testing.T) {
	routing := testenv.RequireRouting(t)
	rr := testenv.NewNetns(t)
	// The speaker runs in this process, in the root namespace; the veth's
	// root end carries its address. Both ends belong to this test only.
	hostIf := "vps" + strings.TrimPrefix(rr.Name, "vpt-")[:6]
	testenv.Veth(t, rr, "eth0", "10.249.0.1/30", nil, hostIf, "10.249.0.2/30")

	dir := t.TempDir()
	sock := filepath.Join(dir, "bird.ctl")
	conf := filepath.Join(dir, "bird.conf")
	require.NoError(t, os.WriteFile(conf, []byte(`
router id 10.249.0.1;
protocol device { }
protocol bgp hv1 {
  local 10.249.0.1 as 65000;
  neighbor 10.249.0.2 as 65000;
  direct;            # iBGP neighbours are on-link; BIRD treats iBGP as multihop otherwise
  rr client;
  hold time 9; keepalive time 3; connect retry time 1;
  ipv4 { import all; export all; gateway direct; };
}
`), 0o644))
	bird := rr.Command(context.WithoutCancel(t.Context()), routing.Bird, "-f", "-c", conf, "-s", sock)
	bird.Stdout, bird.Stderr = os.Stderr, os.Stderr
	require.NoError(t, bird.Start())
	t.Cleanup(func() { _ = bird.Process.Kill(); _ = bird.Wait() })

	s := server.NewBgpServer()
	go s.Serve()
	t.Cleanup(s.Stop)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	require.NoError(t, s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 65000, RouterId: "10.249.0.2", ListenPort: -1, // dial out only: no listener on the host
	}}))
	require.NoError(t, s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "10.249.0.1", PeerAsn: 65000},
		Transport: &api.Transport{LocalAddress: "10.249.0.2"},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
	}}))

	nlri, err := bgp.NewIPAddrPrefix(netip.MustParsePrefix("10.249.100.7/32"))
	require.NoError(t, err)
	nh, err := bgp.NewPathAttributeNextHop(netip.MustParseAddr("10.249.0.2"))
	require.NoError(t, err)
	_, err = s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{
		Family: bgp.RF_IPv4_UC,
		Nlri:   nlri,
		Attrs:  []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh},
	}}})
	require.NoError(t, err)

	var last string
	for ctx.Err() == nil {
		out, _ := exec.CommandContext(ctx, routing.Birdc, "-s", sock, "show", "route", "for", "10.249.100.7/32", "all").CombinedOutput()
		last = string(out)
		if strings.Contains(last, "10.249.100.7/32") && strings.Contains(last, "BGP.next_hop: 10.249.0.2") {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("route reflector never showed 10.249.100.7/32; last birdc output:\n%s", last)
}

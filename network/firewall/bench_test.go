package firewall_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/firewall"
)

// BenchmarkApplyPolicy: replacing one port's policy through one netlink
// transaction, beside the reference an operator script would use — the nft
// CLI loading the same ruleset from a file (process start included, as a
// script pays it). The ratio is nft / Apply.
func BenchmarkApplyPolicy(b *testing.B) {
	ns := testenv.NewNetns(b)
	ns.Run(b, "ip", "link", "add", "vm1p", "type", "veth", "peer", "name", "vm1px")
	fw, err := firewall.New(nftIn(b, ns))
	require.NoError(b, err)
	p := firewall.Policy{Port: "vm1p", MAC: mac1,
		IPv4:     []netip.Addr{netip.MustParseAddr("10.70.0.1"), netip.MustParseAddr("10.70.0.5")},
		IPv6:     []netip.Addr{netip.MustParseAddr("fd00:70::1")},
		BlockOut: []firewall.PortRange{{Protocol: "tcp", First: 25}, {Protocol: "tcp", First: 465}, {Protocol: "udp", First: 137, Last: 139}},
		BlockIn:  []firewall.PortRange{{Protocol: "tcp", First: 8000, Last: 8100}},
	}
	require.NoError(b, fw.Apply(b.Context(), p))
	// The same rules in nft's language (the listing of the installed table
	// shows raw payload matches that nft cannot read back).
	ruleset := `table netdev vpt-vm1p
delete table netdev vpt-vm1p
table netdev vpt-vm1p {
  set ipv4 { type ipv4_addr; elements = { 0.0.0.0, 10.70.0.1, 10.70.0.5 }; }
  set ipv6 { type ipv6_addr; elements = { ::, fd00:70::1 }; }
  chain from-vm {
    type filter hook ingress device "vm1p" priority filter; policy accept;
    ether saddr != 02:f0:00:00:00:01 drop
    meta l4proto tcp th dport 25 drop
    meta l4proto tcp th dport 465 drop
    meta l4proto udp th dport 137-139 drop
    arp saddr ether != 02:f0:00:00:00:01 drop
    arp saddr ip != @ipv4 drop
    ip saddr != @ipv4 drop
    ip6 saddr fe80::/10 accept
    ip6 saddr != @ipv6 drop
    ether type != { ip, arp, ip6 } drop
  }
  chain to-vm {
    type filter hook egress device "vm1p" priority filter; policy accept;
    meta l4proto tcp th dport 8000-8100 drop
  }
}
`
	file := filepath.Join(b.TempDir(), "port.nft")
	require.NoError(b, os.WriteFile(file, []byte(ruleset), 0o644))

	var applyTime, cliTime time.Duration
	for b.Loop() {
		start := time.Now()
		require.NoError(b, fw.Apply(b.Context(), p))
		applyTime += time.Since(start)
		b.StopTimer()
		start = time.Now()
		ns.Run(b, "nft", "-f", file)
		cliTime += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(cliTime)/float64(applyTime), "nft-cli/apply")
}

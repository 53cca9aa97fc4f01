package hostnet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/nettest"
)

// BenchmarkApplyPorts: a bridge with N VM ports in a real namespace; each
// iteration one VM starts (its port joins). Apply (diff-based) makes one
// change; the naive reference deletes the bridge and recreates it with every
// port, as a script that re-runs its whole configuration would. The ratio
// is naive time / Apply time.
func BenchmarkApplyPorts(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			ns := testenv.NewNetns(b)
			var ports []string
			for i := range n {
				p := fmt.Sprintf("vm%dp", i)
				ns.Run(b, "ip", "link", "add", p, "type", "veth", "peer", "name", p+"x")
				ports = append(ports, p)
			}
			nl := nettest.Handle(b, ns.Name)
			h, err := hostnet.New(hostnet.Config{Netlink: nl})
			require.NoError(b, err)
			desired := func(k int) hostnet.Desired {
				d := hostnet.Desired{Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "br0"}}}}
				for _, p := range ports[:k] {
					d.Ports = append(d.Ports, hostnet.Port{Name: p, Master: "br0"})
				}
				return d
			}
			_, err = h.Apply(b.Context(), desired(n-1))
			require.NoError(b, err)

			naive := func() {
				if br, err := nl.LinkByName("br0"); err == nil {
					require.NoError(b, nl.LinkDel(br))
				}
				attrs := netlink.NewLinkAttrs()
				attrs.Name = "br0"
				br := &netlink.Bridge{LinkAttrs: attrs}
				require.NoError(b, nl.LinkAdd(br))
				for _, p := range ports {
					l, err := nl.LinkByName(p)
					require.NoError(b, err)
					require.NoError(b, nl.LinkSetMaster(l, br))
					require.NoError(b, nl.LinkSetUp(l))
				}
				require.NoError(b, nl.LinkSetUp(br))
			}

			var applyTime, naiveTime time.Duration
			for b.Loop() {
				// Back to N-1 ports (untimed), then the VM starts.
				b.StopTimer()
				_, err := h.Apply(b.Context(), desired(n-1))
				require.NoError(b, err)
				b.StartTimer()
				start := time.Now()
				changes, err := h.Apply(b.Context(), desired(n))
				applyTime += time.Since(start)
				require.NoError(b, err)
				require.NotEmpty(b, changes)

				b.StopTimer()
				start = time.Now()
				naive()
				naiveTime += time.Since(start)
				if br, err := nl.LinkByName("br0"); err == nil {
					require.NoError(b, nl.LinkDel(br))
				}
				_, err = h.Apply(b.Context(), desired(n-1))
				require.NoError(b, err)
				b.StartTimer()
			}
			b.ReportMetric(float64(naiveTime.Nanoseconds())/float64(b.N), "naive-ns/op")
			b.ReportMetric(float64(naiveTime)/float64(applyTime), "naive/apply")
		})
	}
}

// BenchmarkPlan: the pure planner on 500 links.
func BenchmarkPlan(b *testing.B) {
	f := hostnet.NewFake()
	d := hostnet.Desired{}
	for i := range 100 {
		br := fmt.Sprintf("br%d", i)
		d.Bridges = append(d.Bridges, hostnet.Bridge{Common: hostnet.Common{Name: br}})
		for j := range 4 {
			p := fmt.Sprintf("tap%d-%d", i, j)
			f.AddLink(p)
			d.Ports = append(d.Ports, hostnet.Port{Name: p, Master: br})
		}
	}
	_, err := f.Apply(b.Context(), d)
	require.NoError(b, err)
	cur, err := f.Links(b.Context())
	require.NoError(b, err)
	for b.Loop() {
		plan, err := hostnet.Plan(cur, d)
		if err != nil || len(plan) != 0 {
			b.Fatal(err, len(plan))
		}
	}
}

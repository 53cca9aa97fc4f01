package scheduler

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// benchCluster is a 10,000-node cluster with overcommit, eight tag
// signatures (node tags × pool layouts) and nodes about half full.
func benchCluster(n int, strategy Strategy) Cluster {
	rng := rand.New(rand.NewPCG(1, 2))
	c := Cluster{Settings: Settings{
		Strategy:      strategy,
		CPURatio:      4,
		RAMRatio:      1.25,
		DiskRatios:    map[string]float64{"local": 2},
		MaxVMsPerNode: 200,
	}}
	tagSets := [][]string{nil, {"gpu"}, {"old"}, {"gpu", "nvme-host"}}
	for i := range n {
		cores := []int{32, 64}[rng.IntN(2)]
		ram := []int64{256, 512}[rng.IntN(2)] * gib
		nd := Node{
			ID:    fmt.Sprintf("node-%05d", i),
			Order: i,
			Tags:  tagSets[rng.IntN(len(tagSets))],
			Cores: cores,
			RAM:   ram,
			Pools: []Pool{{Name: "local", Tags: []string{"hdd"}, Size: 8000 * gib}},
			Used:  Usage{VCPUs: rng.IntN(cores * 2), RAM: rng.Int64N(ram / 2), VMs: rng.IntN(50)},
		}
		if rng.IntN(2) == 0 {
			nd.Pools = append(nd.Pools, Pool{Name: "fast", Tags: []string{"ssd"}, Size: 2000 * gib})
		}
		if rng.IntN(50) == 0 {
			nd.State = NodeMaintenance
		}
		c.Nodes = append(c.Nodes, nd)
	}
	return c
}

// benchRequests is a stream of requests with filters: every request
// forbids "old" nodes, some need a GPU node, some an SSD disk, some are in
// a hard or soft anti-affinity group.
func benchRequests(n int) []Request {
	rng := rand.New(rand.NewPCG(3, 4))
	out := make([]Request, n)
	for i := range out {
		r := Request{
			VCPUs:      []int{1, 2, 4, 8}[rng.IntN(4)],
			RAM:        []int64{1, 2, 4, 8, 16}[rng.IntN(5)] * gib,
			ForbidTags: []string{"old"},
			Disks:      []Disk{{Size: int64(10+rng.IntN(90)) * gib}},
		}
		if rng.IntN(4) == 0 {
			r.RequireTags = []string{"gpu"}
		}
		if rng.IntN(3) == 0 {
			r.Disks = append(r.Disks, Disk{Size: 50 * gib, Tags: []string{"ssd"}})
		}
		if rng.IntN(4) == 0 {
			r.AntiAffinity = AntiAffinity{Group: fmt.Sprintf("group-%d", rng.IntN(2000)), Hard: rng.IntN(2) == 0}
		}
		out[i] = r
	}
	return out
}

// placer runs a steady stream of decisions: each request is placed and
// allocated, and the allocation made window steps earlier is freed, so the
// index changes on every step as it would under real load.
type placer struct {
	s      *Scheduler
	reqs   []Request
	ring   []allocation
	used   []bool
	next   int
	failed int
}

func newPlacer(s *Scheduler, reqs []Request, window int) *placer {
	return &placer{s: s, reqs: reqs, ring: make([]allocation, window), used: make([]bool, window)}
}

func (p *placer) step(naive bool) {
	slot := p.next % len(p.ring)
	if p.used[slot] {
		p.s.apply(&p.ring[slot], -1)
		p.used[slot] = false
	}
	r := &p.reqs[p.next%len(p.reqs)]
	p.next++
	q, err := p.s.compile(r, "request")
	if err != nil {
		panic(err)
	}
	var idx int32
	if naive {
		idx = p.s.placeNaive(q)
	} else {
		idx = p.s.placeIndexed(q)
	}
	if idx < 0 {
		p.failed++
		return
	}
	p.s.fitsDisks(&p.s.nodes[idx], q)
	a := &p.ring[slot]
	a.node, a.req = idx, *r
	a.pools = append(a.pools[:0], p.s.scratch.poolPick...)
	p.s.apply(a, 1)
	p.used[slot] = true
}

func BenchmarkPlace(b *testing.B) {
	const nodes, window = 10_000, 20_000
	for _, strategy := range []Strategy{StrategyEven, StrategySequential} {
		b.Run(fmt.Sprintf("strategy=%s/nodes=%d", strategy, nodes), func(b *testing.B) {
			reqs := benchRequests(4096)
			newRun := func() *placer {
				s, err := New(benchCluster(nodes, strategy))
				if err != nil {
					b.Fatal(err)
				}
				p := newPlacer(s, reqs, window)
				for range window { // reach the steady state before timing
					p.step(false)
				}
				p.failed = 0
				return p
			}
			// The reference, in the same run, on an identical cluster.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ref := newRun()
			naiveN := min(max(b.N/200, 20), 500)
			start, cpu0 := time.Now(), must(threadCPU())
			for range naiveN {
				ref.step(true)
			}
			naiveWall := time.Since(start).Seconds() / float64(naiveN)
			naiveCPU := (must(threadCPU()) - cpu0).Seconds() / float64(naiveN)

			fast := newRun()
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 = time.Now(), must(threadCPU())
			for b.Loop() {
				fast.step(false)
			}
			fastWall := time.Since(start).Seconds() / float64(b.N)
			fastCPU := (must(threadCPU()) - cpu0).Seconds() / float64(b.N)
			b.StopTimer()
			b.ReportMetric(1/fastWall, "placements/s")
			b.ReportMetric(naiveWall/fastWall, "speedup-vs-naive")
			if fastCPU > 0 {
				// The same, counting only the time this thread was on a CPU.
				b.ReportMetric(1/fastCPU, "placements/cpu-s")
				b.ReportMetric(naiveCPU/fastCPU, "cpu-speedup-vs-naive")
			}
			b.ReportMetric(float64(fast.failed)/float64(b.N), "failed/op")
		})
	}
}

func must(d time.Duration, _ bool) time.Duration { return d }

// BenchmarkReserveRelease measures the public API round trip: Reserve a
// request, then Release it.
func BenchmarkReserveRelease(b *testing.B) {
	s, err := New(benchCluster(10_000, StrategyEven))
	if err != nil {
		b.Fatal(err)
	}
	reqs := benchRequests(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		res, err := s.Reserve(reqs[i%len(reqs)], time.Time{})
		i++
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Release(res.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIndexAgreesAtScale drives a few thousand decisions through the index
// and the reference on a cluster large enough for deep trees and several
// buckets, with allocations, releases and state changes in
// between; every answer must be the same.
func TestIndexAgreesAtScale(t *testing.T) {
	for _, strategy := range []Strategy{StrategyEven, StrategySequential} {
		t.Run(string(strategy), func(t *testing.T) {
			c := benchCluster(2000, strategy)
			s, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			p := newPlacer(s, benchRequests(512), 3000)
			rng := rand.New(rand.NewPCG(5, 6))
			for i := range 4000 {
				r := p.reqs[p.next%len(p.reqs)]
				fast, fastErr := s.Place(r)
				naive, naiveErr := s.PlaceNaive(r)
				if fast.Node != naive.Node || !slices.Equal(fast.Pools, naive.Pools) || (fastErr == nil) != (naiveErr == nil) {
					t.Fatalf("step %d: index %v (%v), reference %v (%v)", i, fast, fastErr, naive, naiveErr)
				}
				p.step(false)
				if i%50 == 0 {
					id := c.Nodes[rng.IntN(len(c.Nodes))].ID
					st := []NodeState{NodeActive, NodeMaintenance, NodeOffline}[rng.IntN(3)]
					if err := s.SetNodeState(id, st); err != nil {
						t.Fatal(err)
					}
				}
			}
			if p.failed == 4000 {
				t.Fatal("every request failed: the stream tests nothing")
			}
		})
	}
}

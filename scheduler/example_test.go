package scheduler_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scheduler"
)

func Example() {
	const gib = 1 << 30
	s, err := scheduler.New(scheduler.Cluster{
		Settings: scheduler.Settings{Strategy: scheduler.StrategyEven, CPURatio: 4, RAMRatio: 1},
		Nodes: []scheduler.Node{
			{ID: "node-1", Cores: 16, RAM: 64 * gib, Used: scheduler.Usage{VCPUs: 40, RAM: 48 * gib, VMs: 10}},
			{ID: "node-2", Cores: 16, RAM: 64 * gib, Used: scheduler.Usage{VCPUs: 8, RAM: 16 * gib, VMs: 2}},
			{ID: "node-3", Cores: 16, RAM: 16 * gib, Used: scheduler.Usage{RAM: 15*gib + gib/2}, Tags: []string{"gpu"}},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := s.Place(scheduler.Request{VCPUs: 4, RAM: 8 * gib})
	fmt.Println(p.Node, err)

	_, err = s.Place(scheduler.Request{VCPUs: 2, RAM: gib, RequireTags: []string{"gpu"}})
	fmt.Println(errors.Is(err, virtplane.ErrResourceExhausted))
	fmt.Println(err)
	// Output:
	// node-2 <nil>
	// true
	// no node can take the request: node-1: missing tag "gpu"; node-2: missing tag "gpu"; node-3: RAM 15.5/16 GiB at ratio 1.0, need 1 GiB: resource exhausted
}

func ExampleScheduler_Reserve() {
	const gib = 1 << 30
	s, _ := scheduler.New(scheduler.Cluster{Nodes: []scheduler.Node{{ID: "node-1", Cores: 4, RAM: 8 * gib}}})
	res, _ := s.Reserve(scheduler.Request{VCPUs: 4, RAM: 4 * gib}, time0())
	_, err := s.Place(scheduler.Request{VCPUs: 1, RAM: gib})
	fmt.Println(res.Placement.Node, "held;", err)
	_ = s.Commit(res.ID, "vm-1") // the create succeeded; Release(res.ID) had it failed
	fmt.Println(s.VMCount())
	// Output:
	// node-1 held; no node can take the request: node-1: CPU 4/4 vCPUs at ratio 1.0, need 1: resource exhausted
	// 1
}

// time0 is "no expiry": the reservation lasts until Commit or Release.
func time0() (t time.Time) { return t }

// Command scheduler-only places a few VMs on a small made-up cluster with
// the scheduler package alone: no daemon, no hypervisor, no database.
//
//	go run ./examples/scheduler-only
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/virtplane/virtplane/scheduler"
)

const gib = 1 << 30

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler-only:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) error {
	s, err := scheduler.New(scheduler.Cluster{
		Settings: scheduler.Settings{
			Strategy:      scheduler.StrategyEven,
			CPURatio:      4,   // 4 vCPUs per core
			RAMRatio:      1,   // no RAM overcommit
			MaxVMsPerNode: 100, // and at most 100 VMs per node
			DiskRatios:    map[string]float64{"thin": 2},
		},
		Nodes: []scheduler.Node{
			{ID: "hv-1", Cores: 32, RAM: 256 * gib, Tags: []string{"rack-a"},
				Pools: []scheduler.Pool{{Name: "thin", Tags: []string{"ssd"}, Size: 2000 * gib}}},
			{ID: "hv-2", Cores: 32, RAM: 256 * gib, Tags: []string{"rack-b"},
				Pools: []scheduler.Pool{{Name: "thin", Tags: []string{"ssd"}, Size: 2000 * gib}},
				Used:  scheduler.Usage{VCPUs: 64, RAM: 128 * gib, VMs: 20}},
			{ID: "hv-3", Cores: 16, RAM: 128 * gib, Tags: []string{"rack-b", "gpu"},
				Pools: []scheduler.Pool{{Name: "local", Tags: []string{"hdd"}, Size: 4000 * gib}}},
			{ID: "hv-4", State: scheduler.NodeMaintenance, Cores: 64, RAM: 512 * gib},
		},
	})
	if err != nil {
		return err
	}

	web := func() scheduler.Request {
		return scheduler.Request{VCPUs: 4, RAM: 8 * gib,
			Disks:        []scheduler.Disk{{Size: 40 * gib, Tags: []string{"ssd"}}},
			AntiAffinity: scheduler.AntiAffinity{Group: "web", Hard: true}}
	}
	// Reserve two web servers at once: each on its own node, or none.
	res, err := s.ReserveBatch([]scheduler.Request{web(), web()}, time.Now().Add(10*time.Minute))
	if err != nil {
		return err
	}
	for i, r := range res {
		fmt.Fprintf(w, "web-%d -> %s (disk on %v)\n", i+1, r.Placement.Node, r.Placement.Pools)
		if err := s.Commit(r.ID, fmt.Sprintf("web-%d", i+1)); err != nil {
			return err
		}
	}
	// A third web server has no node left: both SSD nodes host one.
	if _, err := s.Place(web()); err != nil {
		fmt.Fprintln(w, "web-3:", err)
	}

	p, err := s.Place(scheduler.Request{VCPUs: 8, RAM: 32 * gib, RequireTags: []string{"gpu"}})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "gpu job ->", p.Node)

	plan, err := s.PlanEvacuation("hv-1", nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "evacuating hv-1: %d moves, %d unplaced\n", len(plan.Moves), len(plan.Unplaced))
	for _, u := range plan.Unplaced {
		fmt.Fprintln(w, "  cannot place", u.VM+":", u.Err)
	}
	fmt.Fprintf(w, "imbalance: %.2f\n", s.Imbalance())
	return nil
}

// Package ha keeps HA virtual machines running when a node fails, and never
// lets one run on two nodes at once.
//
// Each node runs an Agent: it sends a Heartbeat to every controller, probes
// the cluster's check address (usually the gateway) and runs a self-fencing
// watchdog — a node that has not reached a majority of the controllers for
// Timings.SelfFenceTimeout stops its HA VMs. Each controller runs a
// Controller: a pure Detector, fed with the heartbeats, the node's reported
// check-address reachability and the controller's own probes of the node's
// hypervisor, marks a node suspect after a short miss and failed only when
// the heartbeats and the hypervisor agree (or when the node reports itself
// isolated from the check address). With several controllers (WithPeers),
// the acting one fences only when a majority sees the node failed.
//
// A failed node is fenced before anything restarts: through its hypervisor
// if it still answers (the VMs are stopped and seen stopped), through a
// Power fencer (IPMI-style; ha/fakepower is the fake, ha/powertest the
// conformance suite), or by waiting SelfFenceTimeout + FenceMargin after the
// last heartbeat any agreeing controller received, by which time the
// node's watchdog has stopped its VMs. A restart never happens on an
// unconfirmed fence. Then the HA VMs with shared disks are placed by the
// scheduler's evacuation plan and restarted in priority order with bounded
// parallelism; VMs that are not HA or whose disks are local are reported,
// not restarted, and VMs that fit nowhere wait and are retried when
// capacity appears. Drain and Return live-migrate a node's VMs away for
// maintenance and back. Every decision goes to a DecisionLog.
//
// With DefaultTimings an HA VM runs again about 4–6 s after its node dies,
// even without a power fencer (see Timings for the budget).
//
//	ctl, err := ha.New(ha.Config{
//		Nodes:     []ha.Node{{ID: "node-1", Driver: d1, MigrationURI: "qemu+tcp://node-1/system"}, ...},
//		VMs:       []ha.VM{{ID: "web-1", Node: "node-1", HA: true, SharedDisks: true, Priority: 10, Request: req, Spec: spec}},
//		Scheduler: sched,
//	}, ha.WithPower(ipmi), ha.WithEventSink(publish))
//	if err != nil { ... }
//	go ctl.Run(ctx)
//	// node agents deliver heartbeats with ctl.Heartbeat (through the daemon's agent API)
//	rep, err := ctl.Drain(ctx, "node-2") // maintenance
//
// examples/ha-controller runs a controller over three simulated nodes
// through a crash, a power fence and the restarts.
package ha

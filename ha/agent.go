package ha

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// CheckProber tells whether the node reaches the cluster's check address.
type CheckProber interface {
	ProbeCheck(ctx context.Context) error
}

// TCPCheck probes the check address by opening a TCP connection to it
// (a gateway's SSH or HTTP port, for instance).
type TCPCheck struct {
	// Address is host:port.
	Address string
}

// ProbeCheck dials Address and closes the connection.
func (c TCPCheck) ProbeCheck(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Address)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "check address %s: %v", c.Address, err)
	}
	return conn.Close()
}

// AgentConfig holds what a node Agent needs.
type AgentConfig struct {
	// Node is the node's ID.
	Node string
	// Driver is the node's own hypervisor connection (a local socket), used
	// by the watchdog to stop HA VMs.
	Driver vmm.Driver
	// Controllers receive heartbeats; a majority must acknowledge them.
	Controllers []HeartbeatSink
	// Check probes the check address.
	Check CheckProber
	// IsHA says which machines the watchdog stops; nil means all of them.
	IsHA    func(name string) bool
	Timings Timings
	// Log receives the watchdog's decisions; nil keeps them only in the
	// agent's own log (Agent.Log).
	Log *DecisionLog
}

// Agent runs on each node: it sends heartbeats, probes the check address
// and runs the self-fencing watchdog.
type Agent struct {
	cfg AgentConfig
	t   Timings
	log *DecisionLog

	mu sync.Mutex
	wd *Watchdog
}

// NewAgent checks cfg and returns an agent.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	t := cfg.Timings.WithDefaults()
	if err := t.Validate(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Node == "":
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent.Node: empty")
	case cfg.Driver == nil:
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent.Driver: nil")
	case len(cfg.Controllers) == 0:
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent.Controllers: none")
	case cfg.Check == nil:
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent.Check: nil")
	}
	log := cfg.Log
	if log == nil {
		log = NewDecisionLog(nil)
	}
	return &Agent{cfg: cfg, t: t, log: log, wd: NewWatchdog(t, time.Now())}, nil
}

// Log returns the agent's decision log.
func (a *Agent) Log() *DecisionLog { return a.log }

// Fenced reports whether the watchdog has fired and the node has not
// reached the controllers since.
func (a *Agent) Fenced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wd.Fenced()
}

// Run sends heartbeats, probes the check address and watches until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, loop := range []struct {
		every time.Duration
		do    func(context.Context)
	}{
		{a.t.HeartbeatInterval, a.heartbeat},
		{a.t.CheckInterval, a.check},
		{a.t.TickInterval, a.watch},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(loop.every)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
				}
				loop.do(ctx)
			}
		}()
	}
	wg.Wait()
	return nil
}

// heartbeat sends one round. The watchdog counts from when the round
// started, not when the acknowledgements came back, so that a slow
// acknowledgement never extends it past what the controllers count.
func (a *Agent) heartbeat(ctx context.Context) {
	start := time.Now()
	a.mu.Lock()
	hb := Heartbeat{Node: a.cfg.Node, CheckOK: a.wd.CheckOK()}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, a.t.HeartbeatInterval)
	defer cancel()
	acks := make(chan bool, len(a.cfg.Controllers))
	for _, c := range a.cfg.Controllers {
		go func() { acks <- c.Heartbeat(ctx, hb) == nil }()
	}
	ok := 0
	for range a.cfg.Controllers {
		if <-acks {
			ok++
		}
	}
	if Majority(ok, len(a.cfg.Controllers)) {
		a.mu.Lock()
		a.wd.Contact(start)
		a.mu.Unlock()
	}
}

func (a *Agent) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, a.t.CheckInterval)
	defer cancel()
	err := a.cfg.Check.ProbeCheck(ctx)
	a.mu.Lock()
	a.wd.CheckAddress(err == nil)
	a.mu.Unlock()
}

// watch stops the HA VMs while the watchdog says so.
func (a *Agent) watch(ctx context.Context) {
	a.mu.Lock()
	fence, first := a.wd.Tick(time.Now())
	deadline := a.wd.Deadline()
	checkOK := a.wd.CheckOK()
	a.mu.Unlock()
	if !fence {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.t.FenceMargin)
	defer cancel()
	list, err := a.cfg.Driver.List(ctx)
	if err != nil {
		return
	}
	stopped := 0
	for _, vm := range list {
		if vm.State != vmm.StateRunning && vm.State != vmm.StatePaused {
			continue
		}
		if a.cfg.IsHA != nil && !a.cfg.IsHA(vm.Name) {
			continue
		}
		if a.cfg.Driver.Stop(ctx, vm.Name) == nil {
			stopped++
		}
	}
	if first || stopped > 0 {
		a.log.Record(Event{Time: time.Now(), Kind: EventSelfFenced, Node: a.cfg.Node, Method: FenceSelf,
			Reason: fmt.Sprintf("no majority of controllers since %s (check address reachable: %v); stopped %d HA VMs",
				deadline.Add(-a.t.SelfFenceTimeout).Format(time.RFC3339Nano), checkOK, stopped)})
	}
}

package ha_test

import (
	"fmt"
	"time"

	"github.com/virtplane/virtplane/ha"
)

// The detector is a pure state machine: feed it signals with their times.
func ExampleDetector() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := ha.NewDetector(ha.DefaultTimings())
	d.AddNode("node-1", start)
	d.Heartbeat("node-1", start.Add(time.Second), true)
	d.HypervisorOK("node-1", start.Add(time.Second))
	// Then the node goes silent.
	for s := 1; s <= 4; s++ {
		for _, tr := range d.Tick(start.Add(time.Duration(s) * time.Second)) {
			fmt.Printf("%ds: %s → %s\n", s, tr.From, tr.To)
		}
	}
	// Output:
	// 3s: healthy → failed
}

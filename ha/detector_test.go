package ha_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/ha"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// signal is one input to the detector at an offset from t0.
type signal struct {
	at        time.Duration
	heartbeat bool
	checkOK   bool
	hyper     bool
}

func TestDetectorStates(t *testing.T) {
	const ms = time.Millisecond
	every := func(from, to, step time.Duration, hb, hv, check bool) []signal {
		var out []signal
		for d := from; d <= to; d += step {
			out = append(out, signal{at: d, heartbeat: hb, hyper: hv, checkOK: check})
		}
		return out
	}
	tests := []struct {
		name    string
		signals []signal
		// want is the state at each probe time.
		want map[time.Duration]ha.NodeState
	}{
		{
			name:    "all signals fresh",
			signals: every(0, 10*time.Second, 250*ms, true, true, true),
			want:    map[time.Duration]ha.NodeState{5 * time.Second: ha.NodeHealthy, 10 * time.Second: ha.NodeHealthy},
		},
		{
			name:    "crash: both silent after 3 s",
			signals: every(0, 3*time.Second, 250*ms, true, true, true),
			want: map[time.Duration]ha.NodeState{
				3*time.Second + 900*ms: ha.NodeHealthy, // 0.9 s late: not yet suspect
				4*time.Second + 100*ms: ha.NodeSuspect,
				4*time.Second + 900*ms: ha.NodeSuspect,
				5 * time.Second:        ha.NodeFailed,
			},
		},
		{
			name: "heartbeats stop, hypervisor answers: only suspect",
			signals: append(every(0, 3*time.Second, 250*ms, true, true, true),
				every(3250*ms, 20*time.Second, 250*ms, false, true, true)...),
			want: map[time.Duration]ha.NodeState{5 * time.Second: ha.NodeSuspect, 20 * time.Second: ha.NodeSuspect},
		},
		{
			name: "hypervisor silent, heartbeats arrive: only suspect",
			signals: append(every(0, 3*time.Second, 250*ms, true, true, true),
				every(3250*ms, 20*time.Second, 250*ms, true, false, true)...),
			want: map[time.Duration]ha.NodeState{5 * time.Second: ha.NodeSuspect, 20 * time.Second: ha.NodeSuspect},
		},
		{
			name:    "isolated: reports the check address lost",
			signals: every(0, 10*time.Second, 250*ms, true, true, false),
			want:    map[time.Duration]ha.NodeState{500 * ms: ha.NodeSuspect, 2 * time.Second: ha.NodeFailed},
		},
		{
			name: "failed node stays failed until RecoverAfter of good signals",
			signals: append(every(0, 1*time.Second, 250*ms, true, true, true),
				every(4*time.Second, 30*time.Second, 250*ms, true, true, true)...),
			want: map[time.Duration]ha.NodeState{
				3*time.Second + 100*ms:  ha.NodeFailed,
				13 * time.Second:        ha.NodeFailed,
				14*time.Second + 200*ms: ha.NodeHealthy,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ha.NewDetector(ha.Timings{})
			d.AddNode("n1", t0)
			i := 0
			for now := time.Duration(0); now <= 30*time.Second; now += 100 * ms {
				for i < len(tt.signals) && tt.signals[i].at <= now {
					s := tt.signals[i]
					if s.heartbeat {
						d.Heartbeat("n1", at(s.at), s.checkOK)
					}
					if s.hyper {
						d.HypervisorOK("n1", at(s.at))
					}
					i++
				}
				d.Tick(at(now))
				if want, ok := tt.want[now]; ok {
					got, _ := d.State("n1")
					assert.Equal(t, want, got, "at %s", now)
				}
			}
		})
	}
}

func TestDetectorTransitionsCarryReasons(t *testing.T) {
	d := ha.NewDetector(ha.Timings{})
	d.AddNode("n2", t0)
	d.AddNode("n1", t0)
	tr := d.Tick(at(1500 * time.Millisecond))
	require.Len(t, tr, 2)
	assert.Equal(t, "n1", tr[0].Node, "sorted by node")
	assert.Equal(t, ha.NodeSuspect, tr[0].To)
	assert.Contains(t, tr[0].Reason, "no heartbeat for 1.5s")
	tr = d.Tick(at(2 * time.Second))
	require.Len(t, tr, 2)
	assert.Equal(t, ha.NodeFailed, tr[0].To)
	assert.Contains(t, tr[0].Reason, "hypervisor silent")
	assert.Empty(t, d.Tick(at(3*time.Second)), "no transition without a change")
	_, ok := d.State("nope")
	assert.False(t, ok)
}

func TestWatchdog(t *testing.T) {
	w := ha.NewWatchdog(ha.Timings{}, t0)
	fence, _ := w.Tick(at(2900 * time.Millisecond))
	assert.False(t, fence)
	fence, first := w.Tick(at(3 * time.Second))
	assert.True(t, fence)
	assert.True(t, first)
	fence, first = w.Tick(at(3100 * time.Millisecond))
	assert.True(t, fence, "keeps fencing while cut off")
	assert.False(t, first)
	w.Contact(at(3200 * time.Millisecond))
	assert.False(t, w.Fenced())
	fence, _ = w.Tick(at(6100 * time.Millisecond))
	assert.False(t, fence)
	w.CheckAddress(true) // the check address does not spare a node cut from the controllers
	fence, _ = w.Tick(at(6200 * time.Millisecond))
	assert.True(t, fence)
}

func TestMajority(t *testing.T) {
	for _, tt := range []struct {
		agree, voters int
		want          bool
	}{{1, 1, true}, {0, 1, false}, {1, 2, false}, {2, 2, true}, {1, 3, false}, {2, 3, true}, {2, 4, false}, {3, 5, true}, {0, 0, false}} {
		assert.Equal(t, tt.want, ha.Majority(tt.agree, tt.voters), "%d of %d", tt.agree, tt.voters)
	}
}

func TestTimingsValidate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		t     ha.Timings
		field string
	}{
		{"negative", ha.Timings{FailAfter: -1}, "FailAfter"},
		{"fail before suspect", ha.Timings{SuspectAfter: 3 * time.Second, FailAfter: 2 * time.Second}, "FailAfter"},
		{"heartbeat too slow for the watchdog", ha.Timings{HeartbeatInterval: 2 * time.Second}, "HeartbeatInterval"},
		{"tick not below margin", ha.Timings{TickInterval: time.Second}, "TickInterval"},
		{"negative parallelism", ha.Timings{RestartParallelism: -1}, "RestartParallelism"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.t.WithDefaults().Validate()
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
	require.NoError(t, ha.DefaultTimings().Validate())
	d := ha.DefaultTimings()
	worst := d.SelfFenceTimeout + d.FenceMargin + d.TickInterval
	assert.Less(t, worst, 10*time.Second, "the defaults confirm a fence by waiting well within the 10 s goal")
}

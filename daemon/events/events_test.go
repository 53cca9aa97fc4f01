package events_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/events"
)

func TestFilterAndDrop(t *testing.T) {
	bus := events.NewBus()
	alice := bus.Subscribe(func(e events.Event) bool { return e.Owner == "alice" }, 2)
	all := bus.Subscribe(nil, 10)
	assert.Equal(t, 2, bus.Subscribers())
	for _, o := range []string{"alice", "bob", "alice", "alice"} {
		bus.Publish(events.Event{Type: "vm", Owner: o, ID: o})
	}
	assert.Len(t, all.C, 4)
	require.Len(t, alice.C, 2)
	for range 2 {
		e := <-alice.C
		assert.Equal(t, "alice", e.Owner)
		assert.False(t, e.At.IsZero())
	}
	assert.EqualValues(t, 1, alice.Dropped(), "the third alice event found the buffer full")
	alice.Close()
	alice.Close()
	_, open := <-alice.C
	assert.False(t, open)
	assert.Equal(t, 1, bus.Subscribers())
}

package agent_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/agent"
	vfake "github.com/virtplane/virtplane/vmm/fake"
)

// BenchmarkGetFake measures what the agent itself costs per call: Get of
// a fake driver's machine (in memory, no hypervisor) through the agent
// over a unix socket, beside the direct call.
func BenchmarkGetFake(b *testing.B) {
	d := vfake.New()
	ctx := context.Background()
	_, err := d.Create(ctx, fakeSpec("vpt-a"))
	require.NoError(b, err)
	remote := serve(b, agent.Node{VMM: d}).client.VMM()
	_, err = remote.Get(ctx, "vpt-a")
	require.NoError(b, err)
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.Get(ctx, "vpt-a"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("agent", func(b *testing.B) {
		for b.Loop() {
			if _, err := remote.Get(ctx, "vpt-a"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

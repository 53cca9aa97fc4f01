package agent_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/agent"
)

// TestAgentRestartedBetweenCallsOverSSH: an agent killed with SIGKILL and
// started again between two calls: the next call, also one that is not
// idempotent, reaches the new agent over the SSH connection.
func TestAgentRestartedBetweenCallsOverSSH(t *testing.T) {
	sock := filepath.Join(socketDir(t), "agent.sock")
	first := startChild(t, sock, "")
	c, err := agent.NewClient(agent.ClientConfig{Dial: sshDial(t, sock), Version: "test-1", Node: "n1", Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	d := c.VMM()
	for i := range 20 {
		_, err = d.List(ctx)
		require.NoError(t, err)
		killChild(t, first)
		first = startChild(t, sock, "")
		_, err = d.Create(ctx, fakeSpec("vpt-a"))
		require.NoError(t, err, "round %d: the first call after the restart", i)
	}
}

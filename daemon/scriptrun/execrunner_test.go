package scriptrun_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/daemon/sshnode"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/scripttest"
	"github.com/virtplane/virtplane/storage"
)

func execHarness(ex storage.Executor, name string) scripttest.Harness {
	r := scriptrun.ExecRunner{Executor: func(context.Context, scripts.Target) (storage.Executor, error) { return ex, nil }}
	target := scripts.Target{Name: name}
	return scripttest.Harness{Runner: r, Target: target,
		ProcessAlive: func(ctx context.Context, pattern string) (bool, error) { return r.ProcessAlive(ctx, target, pattern) }}
}

// TestExecRunnerConformanceLocal runs the suite through the local node's
// executor: bash on this host.
func TestExecRunnerConformanceLocal(t *testing.T) {
	testenv.SkipShort(t)
	scripttest.Run(t, func(t *testing.T) scripttest.Harness { return execHarness(storage.LocalExecutor{}, "local") })
}

// TestExecRunnerConformanceSSHNode runs the suite through an ssh:// node's
// executor, over the loopback sshd.
func TestExecRunnerConformanceSSHNode(t *testing.T) {
	env := testenv.RequireSSH(t)
	key, err := os.ReadFile(env.KeyFile)
	require.NoError(t, err)
	conn, err := sshnode.New(sshnode.Config{Name: "node1", Addr: env.Addr, User: env.User, PrivateKey: key, KnownHostsFile: env.KnownHosts})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	scripttest.Run(t, func(t *testing.T) scripttest.Harness { return execHarness(conn.Executor(), "node1") })
}

// bufferedOnly hides the streaming capability of an executor.
type bufferedOnly struct{ storage.Executor }

// TestExecRunnerWithoutStreaming: an executor without Stream still gives
// the output, the stderr text and the exit code, at the end.
func TestExecRunnerWithoutStreaming(t *testing.T) {
	testenv.SkipShort(t)
	h := execHarness(bufferedOnly{storage.LocalExecutor{}}, "local")
	r, err := scripts.Render(scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell,
		Body: "printf '%s\\n' \"$V\"\necho oops >&2\nexit 5\n", Params: []scripts.Param{{Name: "V", Type: scripts.String}}},
		scripts.RenderInput{Args: map[string]string{"V": "a'b; $(x)"}})
	require.NoError(t, err)
	var out, errOut strings.Builder
	code, err := h.Runner.Run(t.Context(), scripts.Job{Target: h.Target, Script: r, Timeout: time.Minute, Stdout: &out, Stderr: &errOut})
	require.NoError(t, err)
	assert.Equal(t, 5, code)
	assert.Equal(t, "a'b; $(x)\n", out.String())
	assert.Equal(t, "oops\n", errOut.String())
}

func TestExecRunnerRefuses(t *testing.T) {
	h := execHarness(storage.LocalExecutor{}, "local")
	ps, err := scripts.Render(scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.PowerShell, Body: "Write-Host hi\n"}, scripts.RenderInput{})
	require.NoError(t, err)
	_, err = h.Runner.Run(t.Context(), scripts.Job{Target: h.Target, Script: ps})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	unreachable := scriptrun.ExecRunner{Executor: func(context.Context, scripts.Target) (storage.Executor, error) {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "node gone")
	}}
	sh, err := scripts.Render(scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell, Body: "true\n"}, scripts.RenderInput{})
	require.NoError(t, err)
	code, err := unreachable.Run(t.Context(), scripts.Job{Target: h.Target, Script: sh})
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Equal(t, -1, code)
}

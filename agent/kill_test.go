package agent_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
	vfake "github.com/virtplane/virtplane/vmm/fake"
)

// TestMain doubles as an agent process for the tests that kill one:
// with VPT_AGENT_CHILD set, the test binary serves a fake node there.
func TestMain(m *testing.M) {
	if sock := os.Getenv("VPT_AGENT_CHILD"); sock != "" {
		if err := runChild(sock, os.Getenv("VPT_AGENT_CHILD_SLOW"), os.Getenv("VPT_AGENT_CHILD_BARE") != ""); err != nil {
			fmt.Fprintln(os.Stderr, "agent child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(sock, slow string, bare bool) error {
	d := vfake.New()
	if slow != "" {
		d.SetLatency(slow, time.Hour)
	}
	var drv vmm.Driver = d
	if bare {
		drv = vmmOnly{d}
	}
	srv, err := agent.NewServer(agent.ServerConfig{Version: "test-1", Node: agent.Node{VMM: drv, Exec: storage.LocalExecutor{}}})
	if err != nil {
		return err
	}
	l, err := agent.ListenUnix(sock)
	if err != nil {
		return err
	}
	return srv.Serve(l)
}

// startChild starts an agent process on sock whose method slow hangs;
// bare serves a driver without optional capabilities.
func startChild(t *testing.T, sock, slow string, bare ...bool) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VPT_AGENT_CHILD="+sock, "VPT_AGENT_CHILD_SLOW="+slow)
	if len(bare) > 0 && bare[0] {
		cmd.Env = append(cmd.Env, "VPT_AGENT_CHILD_BARE=1")
	}
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			_ = c.Close()
			return &child{cmd: cmd, exited: exited}
		}
		select {
		case <-exited:
			t.Fatal("the agent process exited before it listened")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent process did not listen within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// child is an agent process.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// killChild kills the agent process with SIGKILL and waits until it is
// gone (its socket file stays, as a crashed agent's does).
func killChild(t *testing.T, c *child) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the killed agent process did not exit")
	}
}

// TestAgentKilledDuringCalls kills the agent process with SIGKILL while a
// create's start is in progress: that call fails with ErrUnavailable, calls
// fail the same while no agent runs, and once one runs again the next call
// reconnects, the pool the client opened is there again (opened anew) and
// the event stream delivers again.
func TestAgentKilledDuringCalls(t *testing.T) {
	sock := filepath.Join(socketDir(t), "agent.sock")
	first := startChild(t, sock, "Start")
	c, err := agent.NewClient(agent.ClientConfig{Dial: unixDial(sock), Version: "test-1", Node: "n1", Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	d := c.VMM()
	_, err = d.Create(ctx, fakeSpec("vpt-a"))
	require.NoError(t, err)
	poolDir := t.TempDir()
	_, err = c.OpenPool(ctx, agent.PoolSpec{Name: "cluster", Driver: "file", Path: poolDir})
	require.NoError(t, err)
	events, err := d.(vmm.EventWatcher).Events(ctx)
	require.NoError(t, err)

	started := make(chan error, 1)
	go func() { started <- d.Start(ctx, "vpt-a") }()
	time.Sleep(200 * time.Millisecond) // the start hangs in the agent (or has not left yet: it fails either way)
	killChild(t, first)
	select {
	case err := <-started:
		require.ErrorIs(t, err, virtplane.ErrUnavailable, "the call the agent died in")
	case <-ctx.Done():
		t.Fatal("the call did not end with its agent")
	}
	_, err = d.List(ctx)
	require.ErrorIs(t, err, virtplane.ErrUnavailable, "no agent runs")

	startChild(t, sock, "")
	vms, err := d.List(ctx)
	require.NoError(t, err, "the next call reconnects")
	assert.Empty(t, vms, "a new agent process with a fresh fake node")
	_, err = c.Pool("cluster").List(ctx)
	require.NoError(t, err, "the pool the client opened is opened again")

	// The stream subscribes again within its backoff; what happens in the
	// gap is lost, as for a slow reader: stop and start the machine until
	// an event shows that the stream delivers again.
	_, err = d.Create(ctx, fakeSpec("vpt-b"))
	require.NoError(t, err)
	for {
		require.NoError(t, d.Start(ctx, "vpt-b"))
		tick := time.After(500 * time.Millisecond)
	wait:
		for {
			select {
			case ev, ok := <-events:
				require.True(t, ok, "the event stream closed")
				if ev.VM == "vpt-b" && ev.State == vmm.StateRunning {
					return
				}
			case <-tick:
				break wait
			case <-ctx.Done():
				t.Fatal("the event stream did not resume after the restart")
			}
		}
		require.NoError(t, d.Stop(ctx, "vpt-b"))
	}
}

// TestCapabilitiesFollowARestartedAgent: an agent restarted with other
// drivers is asked again once the client connected anew, and the pools
// the client opened are there again with their capabilities.
func TestCapabilitiesFollowARestartedAgent(t *testing.T) {
	sock := filepath.Join(socketDir(t), "agent.sock")
	first := startChild(t, sock, "")
	c, err := agent.NewClient(agent.ClientConfig{Dial: unixDial(sock), Version: "test-1", Node: "n1", Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	_, err = c.OpenPool(ctx, agent.PoolSpec{Name: "cluster", Driver: "file", Path: t.TempDir()})
	require.NoError(t, err)
	_, ok := vmm.As[vmm.Migrator](c.VMM())
	require.True(t, ok)

	killChild(t, first)
	startChild(t, sock, "", true)
	_, err = c.VMM().List(ctx)
	require.NoError(t, err, "reconnected")
	_, ok = vmm.As[vmm.Migrator](c.VMM())
	assert.False(t, ok, "the new agent's driver has no Migrator")
	_, ok = storage.As[storage.Cloner](c.Pool("cluster"))
	assert.True(t, ok, "the lost pool was opened again, with its capabilities")
}

package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// lockedBuffer is a log the agent writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAgent runs `virtplaned agent` with f in this process until the test
// ends, and returns a client of it.
func startAgent(t *testing.T, f agentFlags) (*agent.Client, *lockedBuffer) {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "vpt-agentcmd-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	f.Socket = filepath.Join(sockDir, "run", "agent.sock")
	if f.StateDir == "" {
		f.StateDir = filepath.Join(t.TempDir(), "state")
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, f, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "the agent stops cleanly")
		case <-time.After(30 * time.Second):
			t.Error("the agent did not stop")
		}
	})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", f.Socket); err == nil {
			_ = c.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the agent exited: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not listen within a minute\n%s", logs)
		}
	}
	st, err := os.Stat(f.Socket)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the socket is root's only")
	st, err = os.Stat(filepath.Dir(f.Socket))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	c, err := agent.NewClient(agent.ClientConfig{Version: buildVersion(), Node: "self", Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", f.Socket)
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, logs
}

// TestAgentCommandServesThisHost: the agent offers this host's file pool,
// ports, commands, uploads and facts, refuses a second agent on its state
// directory, and opens pools by the drivers this binary has.
func TestAgentCommandServesThisHost(t *testing.T) {
	f := agentDefaults()
	f.Hypervisor = "none"
	f.StateDir = filepath.Join(t.TempDir(), "state")
	c, _ := startAgent(t, f)
	ctx := t.Context()
	h, err := c.Hello(ctx)
	require.NoError(t, err)
	assert.Equal(t, buildVersion(), h.Version)
	assert.True(t, h.Capabilities.Ports)
	assert.True(t, h.Capabilities.Exec)
	assert.True(t, h.Capabilities.Upload)
	assert.Empty(t, h.Capabilities.VMM, "--hypervisor none")
	assert.Equal(t, []string{"Pool", "Cloner", "Resizer", "Snapshotter"}, h.Capabilities.Pools["local"])
	assert.Subset(t, h.Capabilities.PoolDrivers, []string{"file", "lvm", "san-lvm"})

	facts, err := c.Facts(ctx)
	require.NoError(t, err)
	assert.Equal(t, runtime.NumCPU(), facts.Cores, "the cores this host has, not a default")
	assert.Greater(t, facts.MemoryBytes, int64(256<<20))
	require.Len(t, facts.Pools, 1)
	assert.Equal(t, "local", facts.Pools[0].Name)
	assert.Positive(t, facts.Pools[0].Capacity, "the file pool's file system")

	p, err := c.Upload(ctx, "seed.iso", strings.NewReader("cidata"), 6)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(f.StateDir, "uploads", "seed.iso"), p)
	out, err := c.Exec().Run(ctx, storageCommand("cat", p))
	require.NoError(t, err)
	assert.Equal(t, "cidata", string(out))

	_, err = c.OpenPool(ctx, agent.PoolSpec{Name: "vg", Driver: "lvm", Path: "vgx", Options: map[string]string{"stripes": "2"}})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "an option the lvm driver does not have")
	_, err = c.OpenPool(ctx, agent.PoolSpec{Name: "rbd", Driver: "nfs", Path: "x"})
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
	vol, err := c.OpenPool(ctx, agent.PoolSpec{Name: "cluster", Driver: "file", Path: filepath.Join(f.StateDir, "cluster")})
	require.NoError(t, err)
	_, err = vol.List(ctx)
	require.NoError(t, err)

	ports, err := c.Ports().List(ctx)
	require.NoError(t, err)
	assert.Empty(t, ports)

	second := f
	second.Socket = filepath.Join(t.TempDir(), "b.sock")
	err = runAgent(ctx, second, &bytes.Buffer{})
	assert.ErrorIs(t, err, virtplane.ErrConflict, "one agent per state directory")
}

// TestAgentCommandLibvirt: with the local libvirtd, the agent serves its
// driver with the domain type given (the machine's recorded one) and
// reports libvirt's and QEMU's versions.
func TestAgentCommandLibvirt(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	f := agentDefaults()
	f.LibvirtSocket, f.DomainType = lv.Socket, lv.DomainType
	c, logs := startAgent(t, f)
	ctx := t.Context()
	_, err := c.VMM().List(ctx)
	require.NoError(t, err)
	_, ok := vmm.As[vmm.Migrator](c.VMM())
	assert.True(t, ok, "the libvirt driver migrates")
	facts, err := c.Facts(ctx)
	require.NoError(t, err)
	assert.Regexp(t, `^\d+\.\d+`, facts.Libvirt)
	assert.Regexp(t, `^\d+\.\d+`, facts.QEMU)
	assert.Contains(t, logs.String(), "domain type")
}

func storageCommand(name string, args ...string) storage.Command {
	return storage.Command{Name: name, Args: args}
}

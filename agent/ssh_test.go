package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/daemon/sshnode"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/storage"
	sfake "github.com/virtplane/virtplane/storage/fake"
	"github.com/virtplane/virtplane/storage/storagetest"
	"github.com/virtplane/virtplane/vmm"
	vfake "github.com/virtplane/virtplane/vmm/fake"
	"github.com/virtplane/virtplane/vmm/vmmtest"
)

// sshDial returns a Dial that reaches the socket through an SSH connection
// to the environment's sshd, as the controller reaches a node's agent.
func sshDial(t testing.TB, sock string) func(ctx context.Context) (net.Conn, error) {
	t.Helper()
	env := testenv.RequireSSH(t)
	key, err := os.ReadFile(env.KeyFile)
	require.NoError(t, err)
	conn, err := sshnode.New(sshnode.Config{Name: "n1", Addr: env.Addr, User: env.User, PrivateKey: key, KnownHostsFile: env.KnownHosts})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, sock) }
}

// overSSH serves node and returns a client that reaches it over SSH.
func overSSH(t testing.TB, node agent.Node) *agent.Client {
	t.Helper()
	n := serve(t, node)
	c, err := agent.NewClient(agent.ClientConfig{Dial: sshDial(t, n.socket), Version: "test-1", Node: "n1", Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestConformanceOverSSH runs the suites through the agent with the
// transport of a real node: the agent's unix socket reached through an SSH
// connection (direct-streamlocal), which authenticates both ends.
func TestConformanceOverSSH(t *testing.T) {
	t.Run("vmm", func(t *testing.T) {
		vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
			d := vfake.New()
			return vmmtest.Harness{
				Driver:     overSSH(t, agent.Node{VMM: d}).VMM(),
				Prefix:     "vpt-",
				Templates:  true,
				Spec:       func(t *testing.T, name string) vmm.Spec { return fakeSpec(name) },
				GuestAgent: true,
				Rescue:     vmm.RescueSpec{ISO: "/srv/rescue.iso"},
				CopyTarget: func(*testing.T, int64) vmm.DiskSource {
					return vmm.DiskSource{Kind: "file", Path: "/srv/copy.qcow2", Format: "qcow2"}
				},
				ExtraDisk: func(*testing.T) vmm.DiskSource {
					return vmm.DiskSource{Kind: "file", Path: "/srv/extra.raw", Format: "raw"}
				},
				Migration: func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
					peer := vfake.New()
					d.AddPeer("fake://peer", peer)
					return vmm.MigrationTarget{URI: "fake://peer"}, overSSH(t, agent.Node{VMM: peer}).VMM()
				},
			}
		})
	})
	t.Run("storage", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Pool {
			return overSSH(t, agent.Node{Pools: map[string]storage.Pool{"p": sfake.New("p", nil)}}).Pool("p")
		})
	})
	t.Run("exec", func(t *testing.T) {
		ex := overSSH(t, agent.Node{Exec: storage.LocalExecutor{}}).Exec()
		in := make([]byte, 3<<20+1)
		_, _ = rand.Read(in)
		out, err := ex.Run(t.Context(), storage.Command{Name: "cat", Stdin: bytes.NewReader(in)})
		require.NoError(t, err)
		assert.True(t, bytes.Equal(in, out))
	})
}

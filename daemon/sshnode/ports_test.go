package sshnode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/sshnode"
	"github.com/virtplane/virtplane/internal/testenv"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/port/porttest"
	"github.com/virtplane/virtplane/storage"
)

// agentInProcess is an Executor that answers the agent's command line with
// ServePorts over a Fake, as the agent binary would: the client and the
// protocol without SSH or a kernel.
type agentInProcess struct {
	ports *netport.Fake
	calls []storage.Command
}

func (a *agentInProcess) Run(ctx context.Context, cmd storage.Command) ([]byte, error) {
	a.calls = append(a.calls, cmd)
	if len(cmd.Args) < 2 || cmd.Args[0] != "port" {
		return nil, &storage.ExitError{Command: cmd, Code: 2, Stderr: "usage"}
	}
	var out bytes.Buffer
	if err := sshnode.ServePorts(ctx, a.ports, cmd.Args[1], cmd.Stdin, &out); err != nil {
		return out.Bytes(), &storage.ExitError{Command: cmd, Code: 1}
	}
	return out.Bytes(), nil
}

func TestPortsConformanceOverTheProtocol(t *testing.T) {
	porttest.Run(t, func(t *testing.T) porttest.Harness {
		p, err := sshnode.NewPorts(&agentInProcess{ports: netport.NewFake()}, sshnode.PortsConfig{Node: "n1", Agent: "/a", StateDir: "/s"})
		require.NoError(t, err)
		return porttest.Harness{Ports: p}
	})
}

func TestPortsCarryErrorClasses(t *testing.T) {
	a := &agentInProcess{ports: netport.NewFake()}
	p, err := sshnode.NewPorts(a, sshnode.PortsConfig{Node: "n1", Agent: "/usr/local/bin/virtplaned", StateDir: "/var/lib/vp", Netns: "vms"})
	require.NoError(t, err)
	for _, class := range []error{virtplane.ErrConflict, virtplane.ErrUnavailable, virtplane.ErrInvalidArgument, virtplane.ErrTimeout} {
		a.ports.FailNext("Setup", virtplane.Errorf(class, "bridge vptx: injected"))
		err := p.Setup(t.Context(), netport.ForVM("vm-1", "vptbr0", nil))
		require.ErrorIs(t, err, class)
		assert.Equal(t, "node n1: bridge vptx: injected: "+class.Error(), err.Error())
	}
	_, err = p.List(t.Context())
	require.NoError(t, err)
	// An error of no class stays one.
	err = sshnode.EncodeError(errors.New("no class")).Err("n1")
	require.Error(t, err)
	assert.Nil(t, virtplane.Class(err))
	assert.Equal(t, "node n1: no class", err.Error())
	assert.Nil(t, sshnode.EncodeError(nil).Err("n1"))
	last := a.calls[len(a.calls)-1]
	assert.Equal(t, "/usr/local/bin/virtplaned", last.Name)
	assert.Equal(t, []string{"port", "list", "--state-dir", "/var/lib/vp", "--netns", "vms"}, last.Args)

	_, err = sshnode.NewPorts(a, sshnode.PortsConfig{Node: "n1", Agent: "virtplaned", StateDir: "/s"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

func TestServePortsRefusesBadRequests(t *testing.T) {
	for _, tc := range []struct{ op, in, msg string }{
		{"setup", `{}`, "spec is required"},
		{"setup", `{"spec":`, "request"},
		{"reboot", `{}`, "operation"},
		{"setup", `{"spec":{"name":"x;y"}}`, ""},
	} {
		var out bytes.Buffer
		err := sshnode.ServePorts(t.Context(), netport.NewFake(), tc.op, strings.NewReader(tc.in), &out)
		require.ErrorIs(t, err, virtplane.ErrInvalidArgument, tc.in)
		var resp sshnode.PortResponse
		require.NoError(t, json.Unmarshal(out.Bytes(), &resp))
		require.NotNil(t, resp.Error)
		assert.Equal(t, "invalid argument", resp.Error.Class)
		assert.Contains(t, resp.Error.Message, tc.msg)
	}
}

// The agent is missing or is not virtplaned: unavailable, with its exit.
func TestPortsWithoutAnAgent(t *testing.T) {
	p, err := sshnode.NewPorts(storage.LocalExecutor{}, sshnode.PortsConfig{Node: "n1", Agent: "/nonexistent/virtplaned", StateDir: t.TempDir()})
	require.NoError(t, err)
	_, err = p.List(t.Context())
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Contains(t, err.Error(), "/nonexistent/virtplaned")
}

// The real thing: the virtplaned binary as the agent, run over SSH on the
// loopback node, making ports in a network namespace of the test's own.
func TestPortsConformanceOverSSH(t *testing.T) {
	conn := connect(t)
	bin := agent(t)
	porttest.Run(t, func(t *testing.T) porttest.Harness {
		ns := testenv.NewNetns(t)
		dir := t.TempDir()
		p, err := sshnode.NewPorts(conn.Executor(), sshnode.PortsConfig{Node: "n1", Agent: bin, StateDir: filepath.Join(dir, "ports"), Netns: ns.Name})
		require.NoError(t, err)
		return porttest.Harness{Ports: p,
			Plug: func(t *testing.T, name string) {
				ns.Run(t, "ip", "link", "add", name, "type", "veth", "peer", "name", "vpp"+name[len(name)-8:])
				ns.Run(t, "ip", "link", "set", name, "up")
			},
			Unplug: func(t *testing.T, name string) { ns.Run(t, "ip", "link", "del", name) },
		}
	})
	// A namespace that does not exist: the agent says so, as unavailable.
	p, err := sshnode.NewPorts(conn.Executor(), sshnode.PortsConfig{Node: "n1", Agent: bin, StateDir: filepath.Join(t.TempDir(), "p"), Netns: "vpt-no-such-ns"})
	require.NoError(t, err)
	_, err = p.List(t.Context())
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Contains(t, err.Error(), "vpt-no-such-ns")
}

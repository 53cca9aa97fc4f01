package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/agent"
)

// socketDir is a short private directory for sockets: unix socket paths
// are limited to 107 bytes, and t.TempDir's are long.
func socketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vpt-agent-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// unixDial dials the socket at path.
func unixDial(path string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}

// testLogger logs to the test when -v is set.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// served is a node served by an agent on a unix socket, and a client of it.
type served struct {
	srv    *agent.Server
	client *agent.Client
	socket string
}

// serve starts an agent for node on a fresh socket and returns it with a
// client; both go when the test ends.
func serve(t testing.TB, node agent.Node, opts ...func(*agent.ServerConfig, *agent.ClientConfig)) *served {
	t.Helper()
	sock := filepath.Join(socketDir(t), "agent.sock")
	scfg := agent.ServerConfig{Node: node, Version: "test-1", Logger: testLogger(t)}
	ccfg := agent.ClientConfig{Dial: unixDial(sock), Version: "test-1", CallTimeout: time.Minute, Logger: testLogger(t), Node: "n1"}
	for _, o := range opts {
		o(&scfg, &ccfg)
	}
	srv, err := agent.NewServer(scfg)
	require.NoError(t, err)
	l, err := agent.ListenUnix(sock)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	c, err := agent.NewClient(ccfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &served{srv: srv, client: c, socket: sock}
}

package daemon_test

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/client"
)

// serve runs srv and its API until the test ends, then closes it, and
// returns the API's URL.
func serve(t testing.TB, srv *daemon.Server) string {
	t.Helper()
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = srv.Run(runCtx) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); stop(); <-stopped; _ = srv.Close() })
	return hs.URL
}

// serveAdmin serves srv (see serve), bootstraps it and returns a client
// holding the admin token.
func serveAdmin(t testing.TB, srv *daemon.Server) *client.Client {
	t.Helper()
	url := serve(t, srv)
	token, err := srv.Bootstrap(t.Context(), "admin-password")
	require.NoError(t, err)
	return client.New(url, token)
}

// hostTempDir makes a temporary directory under /var/tmp that QEMU, which
// runs as its own user, can read (t.TempDir is private to root), removed
// when the test ends.
func hostTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", prefix)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

package daemon_test

import (
	"context"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/internal/testenv"
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
	if token == "" { // the store had its admin: sign in as it
		token, err = client.New(url, "").Login(t.Context(), "admin", "admin-password")
		require.NoError(t, err)
	}
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

// restartable returns what starts a daemon (instance "restart") on st, as
// often as a test restarts it: the server, an admin client (bootstrapped
// the first time, logged in after), and what stops it (also at the end of
// the test).
func restartable(t *testing.T, st store.Store) func() (*daemon.Server, *client.Client, func()) {
	return restartableWith(t, func() daemon.Config { return daemon.Config{Store: st, Instance: "restart", DataDir: t.TempDir()} })
}

// restartableWith is restartable with the configuration config gives at
// each start.
func restartableWith(t *testing.T, config func() daemon.Config) func() (*daemon.Server, *client.Client, func()) {
	return func() (*daemon.Server, *client.Client, func()) {
		ctx := t.Context()
		srv, err := daemon.New(config())
		require.NoError(t, err)
		runCtx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { defer close(stopped); _ = srv.Run(runCtx) }()
		hs := httptest.NewServer(srv.Handler())
		token, err := srv.Bootstrap(ctx, "admin-password")
		require.NoError(t, err)
		if token == "" {
			token, err = client.New(hs.URL, "").Login(ctx, "admin", "admin-password")
			require.NoError(t, err)
		}
		var once sync.Once
		stop := func() { once.Do(func() { hs.Close(); cancel(); <-stopped }) }
		t.Cleanup(stop)
		return srv, client.New(hs.URL, token), stop
	}
}

// guestBooted waits for the n-th boot of the test guest on a console log
// and a heartbeat after it, and returns that heartbeat.
func guestBooted(t *testing.T, consoleLog, marker string, n int) int {
	t.Helper()
	var tick int
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(consoleLog)
		var boots int
		boots, tick = testenv.GuestProgress(string(b), marker)
		return boots == n && tick > 0
	}, 2*time.Minute, 250*time.Millisecond, "boot %d of the guest with a heartbeat on %s", n, consoleLog)
	return tick
}

// guestKeptRunning checks that the test guest did not reboot and ticks on
// past the heartbeat it had before (a live migration kept it running).
func guestKeptRunning(t *testing.T, consoleLog, marker string, boots, before int) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(consoleLog)
		n, tick := testenv.GuestProgress(string(b), marker)
		return n == boots && tick > before
	}, time.Minute, 250*time.Millisecond, "the guest ticks on after heartbeat %d without rebooting (%s)", before, consoleLog)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

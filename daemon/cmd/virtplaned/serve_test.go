package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// `make run` starts the daemon with --data ./var, a path relative to where
// it starts: it serves its docs page and keeps its database there.
func TestServeWithRelativeDataDir(t *testing.T) {
	work := t.TempDir()
	p := startDaemonIn(t, work, "./var")
	defer p.stop()
	resp, err := http.Get(p.url + "/docs")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = os.Stat(filepath.Join(work, "var", "virtplane.db"))
	require.NoError(t, err)
}

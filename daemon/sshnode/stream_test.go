package sshnode_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/storage"
)

// lockedBuffer is a bytes.Buffer the session's copy goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestExecutorStreams: Stream hands on output while the command still runs
// (the command waits for a file the test makes only after it saw the first
// line), keeps the PID line off stderr, and reports the exit code.
func TestExecutorStreams(t *testing.T) {
	ex := connect(t).Executor()
	gate := filepath.Join(t.TempDir(), "gate")
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- ex.Stream(t.Context(), storage.Command{Name: "sh", Args: []string{"-c",
			`echo first; echo warn >&2; i=0; while [ ! -e "$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; echo second; exit 3`, "sh", gate}},
			&stdout, &stderr)
	}()
	require.Eventually(t, func() bool { return stdout.String() == "first\n" }, 20*time.Second, 20*time.Millisecond,
		"the first line must arrive while the command still runs")
	require.NoError(t, os.WriteFile(gate, nil, 0o600))
	var err error
	select {
	case err = <-done:
	case <-time.After(40 * time.Second):
		t.Fatal("Stream did not return")
	}
	var exit *storage.ExitError
	require.True(t, errors.As(err, &exit), "%v", err)
	assert.Equal(t, 3, exit.Code)
	assert.Equal(t, "first\nsecond\n", stdout.String())
	assert.Equal(t, "warn\n", stderr.String(), "the PID line stays with the executor")
	assert.Empty(t, exit.Stderr, "streamed stderr is not kept in the error")
}

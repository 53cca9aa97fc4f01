package storage_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/fake"
)

func TestLocalExecutorStreams(t *testing.T) {
	ctx := t.Context()
	ex := storage.LocalExecutor{}
	var out bytes.Buffer
	require.NoError(t, storage.Stream(ctx, ex, storage.Command{Name: "cat", Stdin: strings.NewReader("piped\n")}, &out))
	assert.Equal(t, "piped\n", out.String())

	out.Reset()
	err := storage.Stream(ctx, ex, storage.Command{Name: "sh", Args: []string{"-c", "echo partial; echo broken >&2; exit 3"}}, &out)
	var ee *storage.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.Code)
	assert.Equal(t, "broken\n", ee.Stderr)
	assert.Equal(t, "partial\n", out.String(), "output before the failure stays written")

	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, storage.Stream(tctx, ex, storage.Command{Name: "sleep", Args: []string{"30"}}, &out), virtplane.ErrTimeout)
	assert.ErrorIs(t, storage.Stream(ctx, ex, storage.Command{Name: "-x"}, &out), virtplane.ErrInvalidArgument)
	assert.ErrorIs(t, storage.Stream(ctx, ex, storage.Command{Name: "/nonexistent/vpt"}, &out), virtplane.ErrUnavailable)
}

// An executor without Stream gets Run and one write.
func TestStreamFallsBackToRun(t *testing.T) {
	ex := &fake.Executor{}
	ex.On("echo", "collected", nil)
	var out bytes.Buffer
	require.NoError(t, storage.Stream(t.Context(), ex, storage.Command{Name: "echo"}, &out))
	assert.Equal(t, "collected", out.String())

	ex.On("fail", "", errors.New("boom"))
	assert.Error(t, storage.Stream(t.Context(), ex, storage.Command{Name: "fail"}, &out))
}

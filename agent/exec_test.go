package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/storage"
)

func localExec(t *testing.T) storage.Executor {
	return serve(t, agent.Node{Exec: storage.LocalExecutor{}}).client.Exec()
}

// TestExecPassesHostileArgumentsLiterally: arguments and environment reach
// the program as they are; nothing is read by a shell.
func TestExecPassesHostileArgumentsLiterally(t *testing.T) {
	ex := localExec(t)
	canary := filepath.Join(t.TempDir(), "pwned")
	args := []string{"plain", "", " spaces ", "it's", `"double"`, `back\slash`, "$HOME", "$(touch " + canary + ")",
		"`touch " + canary + "`", "; touch " + canary, "line1\nline2", "tab\there", "*", "-n", "--", "\x01\x7f", "ünïcødé", ">" + canary}
	out, err := ex.Run(t.Context(), storage.Command{Name: "printf", Args: append([]string{"%s\\0"}, args...)})
	require.NoError(t, err)
	assert.Equal(t, args, strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00"))
	out, err = ex.Run(t.Context(), storage.Command{Name: "printenv", Args: []string{"VPT_X"}, Env: []string{"VPT_X=$(touch " + canary + ")'\"\n"}})
	require.NoError(t, err)
	assert.Equal(t, "$(touch "+canary+")'\"\n\n", string(out))
	assert.NoFileExists(t, canary)
}

func TestExecStdinAndExit(t *testing.T) {
	ex := localExec(t)
	ctx := t.Context()
	in := make([]byte, 3<<20+17) // binary, larger than any buffer on the way
	_, _ = rand.Read(in)
	out, err := ex.Run(ctx, storage.Command{Name: "cat", Stdin: bytes.NewReader(in)})
	require.NoError(t, err)
	assert.True(t, bytes.Equal(in, out), "stdin came back changed: %d bytes in, %d out", len(in), len(out))

	out, err = ex.Run(ctx, storage.Command{Name: "cat"})
	require.NoError(t, err, "no stdin: the command reads end of file")
	assert.Empty(t, out)

	out, err = ex.Run(ctx, storage.Command{Name: "sh", Args: []string{"-c", "echo partial; echo 'no space left' >&2; exit 7"}})
	var ee *storage.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 7, ee.Code)
	assert.Equal(t, "no space left\n", ee.Stderr)
	assert.Equal(t, "sh", ee.Command.Name)
	assert.Equal(t, "partial\n", string(out), "the output before the failure")

	// A command that does not read its input still ends.
	_, err = ex.Run(ctx, storage.Command{Name: "true", Stdin: bytes.NewReader(in)})
	require.NoError(t, err)

	_, err = ex.Run(ctx, storage.Command{Name: "-rf"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = ex.Run(ctx, storage.Command{Name: "/nonexistent/vpt-cmd"})
	assert.ErrorIs(t, err, virtplane.ErrUnavailable)

	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = ex.Run(tctx, storage.Command{Name: "sleep", Args: []string{"60"}})
	assert.ErrorIs(t, err, virtplane.ErrTimeout)
}

// TestExecPipesBetweenNodes: one node's command output streams into
// another node's command input, as a volume copy between nodes does, with
// neither side holding the whole of it.
func TestExecPipesBetweenNodes(t *testing.T) {
	a, b := localExec(t), localExec(t)
	ctx := t.Context()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.raw"), filepath.Join(dir, "dst.raw")
	data := make([]byte, 16<<20+5)
	_, _ = rand.Read(data)
	require.NoError(t, os.WriteFile(src, data, 0o600))

	pr, pw := io.Pipe()
	sent := make(chan error, 1)
	go func() {
		err := storage.Stream(ctx, a, storage.Command{Name: "dd", Args: []string{"if=" + src, "bs=1M", "status=none"}}, pw)
		pw.CloseWithError(err)
		sent <- err
	}()
	_, err := b.Run(ctx, storage.Command{Name: "dd", Args: []string{"of=" + dst, "bs=1M", "status=none"}, Stdin: pr})
	require.NoError(t, err)
	require.NoError(t, <-sent)
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got), "the copy differs")

	// A failing reader side fails the writer side's command input.
	pr, pw = io.Pipe()
	go func() {
		err := storage.Stream(ctx, a, storage.Command{Name: "sh", Args: []string{"-c", "head -c 1000 /dev/zero; exit 3"}}, pw)
		pw.CloseWithError(err)
	}()
	_, err = b.Run(ctx, storage.Command{Name: "sh", Args: []string{"-c", "cat > /dev/null"}, Stdin: pr})
	assert.Error(t, err, "the input broke off")
}

// TestExecWithoutExecutor: a node without an executor says so.
func TestExecWithoutExecutor(t *testing.T) {
	_, err := serve(t, agent.Node{}).client.Exec().Run(t.Context(), storage.Command{Name: "true"})
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
}

// TestExecBadCommandHeader: a command header that is not the protocol's is
// refused before anything runs.
func TestExecBadCommandHeader(t *testing.T) {
	n := serve(t, agent.Node{Exec: storage.LocalExecutor{}})
	for _, h := range []string{"", "!!!", "eyJuYW1lIjoidHJ1ZSIsInN1ZG8iOjF9"} { // "", not base64, {"name":"true","sudo":1}
		hdr := goodHeader()
		hdr.Set("Virtplane-Command", h)
		code, body := rawCall(t, n.socket, http.MethodPost, "/v1/exec/Run", hdr, nil)
		assert.Equal(t, http.StatusBadRequest, code)
		assert.Equal(t, "invalid_argument", body["class"], "header %q: %v", h, body)
	}
}

// TestExecStreamsStandardError: a caller that gives Stream a stderr writer
// gets the command's standard error there as it comes, also of a command
// that succeeds (a script's warnings), interleaved with the output in the
// order written; a failed command's ExitError then carries none.
func TestExecStreamsStandardError(t *testing.T) {
	ex := localExec(t).(storage.StreamExecutor)
	ctx := t.Context()
	var out, errOut bytes.Buffer
	require.NoError(t, ex.Stream(ctx, storage.Command{Name: "sh", Args: []string{"-c", "echo out1; echo warn >&2; echo out2"}}, &out, &errOut))
	assert.Equal(t, "out1\nout2\n", out.String())
	assert.Equal(t, "warn\n", errOut.String())

	// Standard error arrives while the command still runs.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- ex.Stream(ctx, storage.Command{Name: "sh", Args: []string{"-c", "echo early >&2; sleep 1; echo late >&2; sleep 30"}}, io.Discard, pw)
	}()
	line := make([]byte, len("early\n"))
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(pr, line); got <- err }()
	select {
	case err := <-got:
		require.NoError(t, err)
		assert.Equal(t, "early\n", string(line))
	case <-time.After(10 * time.Second):
		t.Fatal("the standard error of a running command did not arrive within 10 s")
	}
	_ = pr.Close() // the next write fails: the call ends and the command is stopped
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Stream did not end within 20 s of its stderr writer failing (the command sleeps 30 s)")
	}

	errOut.Reset()
	err := ex.Stream(ctx, storage.Command{Name: "sh", Args: []string{"-c", "echo bad >&2; exit 4"}}, io.Discard, &errOut)
	var ee *storage.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 4, ee.Code)
	assert.Equal(t, "bad\n", errOut.String())
	assert.Empty(t, ee.Stderr, "the text went to the writer")

	// Large output on both streams keeps its bytes and order per stream.
	out.Reset()
	errOut.Reset()
	require.NoError(t, ex.Stream(ctx, storage.Command{Name: "sh", Args: []string{"-c", "seq 1 200000; seq 1 100000 >&2"}}, &out, &errOut))
	assert.Equal(t, 200000, strings.Count(out.String(), "\n"))
	assert.True(t, strings.HasSuffix(out.String(), "\n199999\n200000\n"))
	assert.True(t, strings.HasSuffix(errOut.String(), "\n99999\n100000\n"))
}

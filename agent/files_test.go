package agent_test

import (
	"bytes"
	"crypto/rand"
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
	"github.com/virtplane/virtplane/storage/storagetest"
)

func TestUpload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "uploads")
	c := serve(t, agent.Node{UploadDir: dir}).client
	ctx := t.Context()
	data := make([]byte, 5<<20+3)
	_, _ = rand.Read(data)
	p, err := c.Upload(ctx, "debian-12.qcow2", bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "debian-12.qcow2"), p, "the node-local path")
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got))

	// Again, shorter: replaced whole.
	p, err = c.Upload(ctx, "debian-12.qcow2", strings.NewReader("v2"), 2)
	require.NoError(t, err)
	got, err = os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "v2", string(got))

	p, err = c.Upload(ctx, "empty", strings.NewReader(""), 0)
	require.NoError(t, err)
	assert.FileExists(t, p)

	require.NoError(t, c.RemoveFile(ctx, "empty"))
	assert.NoFileExists(t, p)
	assert.ErrorIs(t, c.RemoveFile(ctx, "empty"), virtplane.ErrNotFound)
	assert.ErrorIs(t, c.RemoveFile(ctx, "../uploads"), virtplane.ErrInvalidArgument)
}

// TestUploadRefusals: names that would leave the upload directory, short
// bodies and nodes that take no uploads are refused, and nothing is left.
func TestUploadRefusals(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "uploads")
	n := serve(t, agent.Node{UploadDir: dir})
	c := n.client
	ctx := t.Context()
	for _, bad := range append([]string{"../escape", "..", ".", "a/b", "/etc/passwd", ".hidden", "sub/../../x"}, storagetest.BadNames...) {
		_, err := c.Upload(ctx, bad, strings.NewReader("x"), 1)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "name %q", bad)
	}
	// The same through raw paths, escaped and not.
	for _, path := range []string{"/v1/files/..%2fescape", "/v1/files/%2e%2e", "/v1/files/a%2Fb", "/v1/files/"} {
		code, body := rawCall(t, n.socket, http.MethodPut, path, goodHeader(), strings.NewReader("x"))
		assert.Equal(t, "invalid_argument", body["class"], "%s: %d %v", path, code, body)
	}

	_, err := c.Upload(ctx, "short", strings.NewReader("abc"), 10)
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "a reader shorter than its size")
	_, err = c.Upload(ctx, "neg", strings.NewReader(""), -1)
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = c.Upload(ctx, "huge", strings.NewReader(""), 1<<60)
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted, "more than the disk holds")

	// The agent removes the temporary file of a broken upload once it sees
	// the connection end, which may be just after the client returned.
	var entries []os.DirEntry
	assert.Eventually(t, func() bool {
		entries, err = os.ReadDir(dir)
		return err == nil && len(entries) == 0
	}, 10*time.Second, 20*time.Millisecond, "no file and no temporary left: %v", entries)
	entries, err = os.ReadDir(root)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing escaped the upload directory")

	_, err = serve(t, agent.Node{}).client.Upload(ctx, "x", strings.NewReader("x"), 1)
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented, "a node without an upload directory")
	_, err = agent.NewServer(agent.ServerConfig{Node: agent.Node{UploadDir: "relative/dir"}})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

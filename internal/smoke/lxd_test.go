package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
)

// lxdClient is the least HTTP client for LXD's REST API over its unix socket.
type lxdClient struct {
	t    *testing.T
	http *http.Client
}

type lxdResponse struct {
	Type       string          `json:"type"`
	StatusCode int             `json:"status_code"`
	Error      string          `json:"error"`
	Operation  string          `json:"operation"`
	Metadata   json.RawMessage `json:"metadata"`
}

func (c *lxdClient) do(ctx context.Context, method, path string, body any) lxdResponse {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://lxd"+path, rd)
	require.NoError(c.t, err)
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	var r lxdResponse
	require.NoError(c.t, json.NewDecoder(resp.Body).Decode(&r), "%s %s", method, path)
	require.NotEqual(c.t, "error", r.Type, "%s %s: %s", method, path, r.Error)
	return r
}

// wait blocks on an operation and fails the test if it did not succeed.
func (c *lxdClient) wait(ctx context.Context, r lxdResponse) json.RawMessage {
	c.t.Helper()
	require.Equal(c.t, "async", r.Type)
	w := c.do(ctx, "GET", r.Operation+"/wait?timeout=60", nil)
	var op struct {
		Status   string          `json:"status"`
		Err      string          `json:"err"`
		Metadata json.RawMessage `json:"metadata"`
	}
	require.NoError(c.t, json.Unmarshal(w.Metadata, &op))
	require.Equal(c.t, "Success", op.Status, "operation %s: %s", r.Operation, op.Err)
	return op.Metadata
}

func (c *lxdClient) raw(ctx context.Context, path string) string {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://lxd"+path, nil)
	require.NoError(c.t, err)
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return string(b)
}

// TestLXDContainerLifecycle creates a busybox container through the REST API,
// starts it, runs a command in it and reads the output, then deletes it.
func TestLXDContainerLifecycle(t *testing.T) {
	env := testenv.RequireLXD(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := &lxdClient{t: t, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", env.Socket)
		},
	}}}

	name := uniqueName("smoke")
	c.wait(ctx, c.do(ctx, "POST", "/1.0/instances", map[string]any{
		"name":   name,
		"type":   "container",
		"source": map[string]any{"type": "image", "alias": env.Image},
	}))
	t.Cleanup(func() {
		ctx := context.WithoutCancel(ctx)
		req, _ := http.NewRequestWithContext(ctx, "PUT", "http://lxd/1.0/instances/"+name+"/state",
			strings.NewReader(`{"action":"stop","force":true,"timeout":30}`))
		if resp, err := c.http.Do(req); err == nil {
			resp.Body.Close()
		}
		time.Sleep(500 * time.Millisecond)
		req, _ = http.NewRequestWithContext(ctx, "DELETE", "http://lxd/1.0/instances/"+name, nil)
		if resp, err := c.http.Do(req); err == nil {
			resp.Body.Close()
		}
	})

	c.wait(ctx, c.do(ctx, "PUT", "/1.0/instances/"+name+"/state", map[string]any{"action": "start", "timeout": 30}))

	meta := c.wait(ctx, c.do(ctx, "POST", "/1.0/instances/"+name+"/exec", map[string]any{
		"command":            []string{"sh", "-c", "echo answer=$((6*7)); exit 3"},
		"wait-for-websocket": false,
		"record-output":      true,
		"interactive":        false,
	}))
	var exec struct {
		Return int               `json:"return"`
		Output map[string]string `json:"output"`
	}
	require.NoError(t, json.Unmarshal(meta, &exec))
	assert.Equal(t, 3, exec.Return, "exit code of the command")
	stdout := c.raw(ctx, exec.Output["1"]) // the path of the recorded stdout log
	assert.Equal(t, "answer=42\n", stdout)

	c.wait(ctx, c.do(ctx, "PUT", "/1.0/instances/"+name+"/state", map[string]any{"action": "stop", "force": true, "timeout": 30}))
	c.wait(ctx, c.do(ctx, "DELETE", "/1.0/instances/"+name, nil))

	req, err := http.NewRequestWithContext(ctx, "GET", "http://lxd/1.0/instances/"+name, nil)
	require.NoError(t, err)
	resp, err := c.http.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, fmt.Sprintf("instance %s must be gone", name))
}

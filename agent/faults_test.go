package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/vmm"
	vfake "github.com/virtplane/virtplane/vmm/fake"
)

// hanging is a driver whose Start blocks until its context ends and then
// reports how it ended.
type hanging struct {
	vmm.Driver
	deadline chan time.Time // the agent-side deadline, zero for none
	ended    chan error
}

func newHanging() hanging {
	return hanging{Driver: vfake.New(), deadline: make(chan time.Time, 1), ended: make(chan error, 1)}
}

func (h hanging) Start(ctx context.Context, _ string) error {
	d, _ := ctx.Deadline()
	h.deadline <- d
	<-ctx.Done()
	h.ended <- ctx.Err()
	return ctx.Err()
}

// serverEnd waits for the agent's side of a hanging call to end.
func serverEnd(t *testing.T, ended chan error) error {
	t.Helper()
	select {
	case err := <-ended:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the agent's work was not canceled")
		return nil
	}
}

// TestHangingCallReturnsAtTheDeadline: a method that never answers returns
// ErrTimeout at the caller's deadline; the deadline travels with the call,
// and the agent's work ends then too (by its own deadline or by the
// connection the caller drops, whichever comes first).
func TestHangingCallReturnsAtTheDeadline(t *testing.T) {
	h := newHanging()
	c := serve(t, agent.Node{VMM: h}).client
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	err := c.VMM().Start(ctx, "vpt-a")
	require.ErrorIs(t, err, virtplane.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	got := <-h.deadline
	require.False(t, got.IsZero(), "the agent's work has a deadline")
	assert.WithinDuration(t, want, got, 5*time.Second, "the caller's deadline (give or take the transit)")
	assert.Error(t, serverEnd(t, h.ended), "the agent's work ended")
}

// TestCallTimeoutBoundsCallsWithoutDeadline: CallTimeout stands in for a
// missing deadline.
func TestCallTimeoutBoundsCallsWithoutDeadline(t *testing.T) {
	h := newHanging()
	c := serve(t, agent.Node{VMM: h}, func(_ *agent.ServerConfig, cc *agent.ClientConfig) { cc.CallTimeout = 200 * time.Millisecond }).client
	err := c.VMM().Start(context.WithoutCancel(t.Context()), "vpt-a")
	require.ErrorIs(t, err, virtplane.ErrTimeout)
	assert.False(t, (<-h.deadline).IsZero(), "CallTimeout travels as the deadline")
	assert.Error(t, serverEnd(t, h.ended))
}

// TestCanceledCallCancelsTheWork: a caller that gives up drops the
// connection, and the agent's work ends with it.
func TestCanceledCallCancelsTheWork(t *testing.T) {
	h := newHanging()
	c := serve(t, agent.Node{VMM: h}).client
	ctx, cancel := context.WithCancel(t.Context())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	err := c.VMM().Start(ctx, "vpt-a")
	require.ErrorIs(t, err, virtplane.ErrCanceled)
	assert.ErrorIs(t, serverEnd(t, h.ended), context.Canceled, "the dropped connection canceled the work")
}

// TestServerClosedMidCall: an agent that goes away during a call fails it
// with ErrUnavailable; once an agent listens again, the next call dials
// anew and works, and reads were never the worse for it.
func TestServerClosedMidCall(t *testing.T) {
	d := vfake.New()
	n := serve(t, agent.Node{VMM: d})
	c := n.client
	ctx := t.Context()
	_, err := c.VMM().Create(ctx, fakeSpec("vpt-a"))
	require.NoError(t, err)
	d.SetLatency("Start", time.Hour)
	failed := make(chan error, 1)
	go func() { failed <- c.VMM().Start(ctx, "vpt-a") }()
	time.Sleep(100 * time.Millisecond) // let the call reach the agent; either way it must fail
	require.NoError(t, n.srv.Close())
	select {
	case err := <-failed:
		require.ErrorIs(t, err, virtplane.ErrUnavailable)
		assert.Contains(t, err.Error(), "node n1")
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not end with its agent")
	}
	_, err = c.VMM().Get(ctx, "vpt-a")
	require.ErrorIs(t, err, virtplane.ErrUnavailable, "no agent: unavailable")

	// A new agent on the same socket, serving the same node.
	d.SetLatency("Start", 0)
	srv, err := agent.NewServer(agent.ServerConfig{Node: agent.Node{VMM: d}, Version: "test-1"})
	require.NoError(t, err)
	l, err := agent.ListenUnix(n.socket)
	require.NoError(t, err, "the stale socket is replaced")
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	vm, err := c.VMM().Get(ctx, "vpt-a")
	require.NoError(t, err, "the next call reconnects")
	assert.Equal(t, vmm.StateStopped, vm.State, "the interrupted start did not happen")
	require.NoError(t, c.VMM().Start(ctx, "vpt-a"))
}

func TestListenUnixRefusesARunningAgentAndOpenDirectories(t *testing.T) {
	n := serve(t, agent.Node{})
	_, err := agent.ListenUnix(n.socket)
	assert.ErrorIs(t, err, virtplane.ErrConflict, "an agent answers there")
	_, err = agent.ListenUnix(filepath.Join(t.TempDir(), "agent.sock"))
	assert.ErrorIs(t, err, virtplane.ErrPermissionDenied, "t.TempDir is 0755: others could reach the socket")
	_, err = agent.ListenUnix("relative.sock")
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

// TestVersionMismatchIsRefused: a client and an agent of different
// versions refuse each other, naming both versions.
func TestVersionMismatchIsRefused(t *testing.T) {
	n := serve(t, agent.Node{VMM: vfake.New()}, func(sc *agent.ServerConfig, cc *agent.ClientConfig) {
		sc.Version, cc.Version = "1.2.0", "1.3.0"
	})
	ctx := t.Context()
	h, err := n.client.Hello(ctx)
	var ve *agent.VersionError
	require.ErrorAs(t, err, &ve)
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	assert.Equal(t, "1.2.0", h.Version, "the agent says who it is")
	assert.False(t, h.Accepted)
	for _, v := range []string{`"1.2.0"`, `"1.3.0"`, "upgrade the agent", "node n1"} {
		assert.Contains(t, err.Error(), v)
	}
	// Every call is refused the same way, not only the handshake.
	_, err = n.client.VMM().List(ctx)
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "1.2.0", ve.AgentVersion)
	assert.Equal(t, "1.3.0", ve.ClientVersion)
	assert.Equal(t, agent.Protocol, ve.AgentProtocol)

	// Without a version on one side only the protocol counts.
	m := serve(t, agent.Node{VMM: vfake.New()}, func(sc *agent.ServerConfig, cc *agent.ClientConfig) { sc.Version, cc.Version = "1.2.0", "" })
	h, err = m.client.Hello(ctx)
	require.NoError(t, err)
	assert.True(t, h.Accepted)
	assert.Equal(t, agent.Protocol, h.Protocol)
}

// rawCall sends a request to the agent at sock as it is, without the
// client, and returns the status and the decoded error body.
func rawCall(t *testing.T, sock, method, path string, header http.Header, body io.Reader) (int, map[string]any) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return unixDial(sock)(ctx)
	}}}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://agent"+path, body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func goodHeader() http.Header {
	return http.Header{"Virtplane-Protocol": {"1"}, "Virtplane-Version": {"test-1"}}
}

// TestBadRequestsAreTypedErrors: what a broken or hostile caller sends is
// refused with a typed error, never a panic or a half-done change.
func TestBadRequestsAreTypedErrors(t *testing.T) {
	d := vfake.New()
	n := serve(t, agent.Node{VMM: d})
	withTimeout := func(v string) http.Header { h := goodHeader(); h.Set("Virtplane-Timeout", v); return h }
	noProtocol := goodHeader()
	noProtocol.Del("Virtplane-Protocol")
	otherProtocol := goodHeader()
	otherProtocol.Set("Virtplane-Protocol", "99")
	for _, c := range []struct {
		name, method, path string
		header             http.Header
		body               string
		class              string
	}{
		{"unknown object", "POST", "/v1/frobnicator/Get", goodHeader(), `{}`, "not_implemented"},
		{"unknown method", "POST", "/v1/vmm/Frobnicate", goodHeader(), `{}`, "not_implemented"},
		{"no version prefix", "POST", "/vmm/Get", goodHeader(), `{}`, "not_implemented"},
		{"GET", "GET", "/v1/vmm/List", goodHeader(), ``, "invalid_argument"},
		{"not JSON", "POST", "/v1/vmm/Get", goodHeader(), `{"Name":`, "invalid_argument"},
		{"unknown field", "POST", "/v1/vmm/Get", goodHeader(), `{"Name":"vpt-a","Force":true}`, "invalid_argument"},
		{"two values", "POST", "/v1/vmm/Get", goodHeader(), `{"Name":"vpt-a"}{"Name":"vpt-b"}`, "invalid_argument"},
		{"wrong type", "POST", "/v1/vmm/Start", goodHeader(), `{"Name":42}`, "invalid_argument"},
		{"oversized body", "POST", "/v1/vmm/Create", goodHeader(), `{"Spec":{"Name":"` + strings.Repeat("a", agent.MaxRequestBytes) + `"}}`, "invalid_argument"},
		{"bad spec", "POST", "/v1/vmm/Create", goodHeader(), `{"Spec":{"Name":"../etc","VCPUs":1,"MemoryMiB":128}}`, "invalid_argument"},
		{"bad timeout", "POST", "/v1/vmm/List", withTimeout("soon"), `{}`, "invalid_argument"},
		{"negative timeout", "POST", "/v1/vmm/List", withTimeout("-1s"), `{}`, "invalid_argument"},
		{"no protocol", "POST", "/v1/vmm/List", noProtocol, `{}`, "conflict"},
		{"other protocol", "POST", "/v1/vmm/List", otherProtocol, `{}`, "conflict"},
		{"no pool", "POST", "/v1/pool/Info", goodHeader(), `{"Pool":"nope"}`, "not_found"},
		{"bad pool name", "POST", "/v1/pool/Info", goodHeader(), `{"Pool":"../x"}`, "invalid_argument"},
		{"no ports", "POST", "/v1/ports/List", goodHeader(), `{}`, "not_implemented"},
		{"no extra", "GET", "/v1/x/ha/status", goodHeader(), ``, "not_implemented"},
		{"no executor", "POST", "/v1/exec/Run", goodHeader(), ``, "not_implemented"},
		{"hello GET", "GET", "/v1/hello", goodHeader(), ``, "invalid_argument"},
		{"hello unknown field", "POST", "/v1/hello", goodHeader(), `{"version":"x","protocol":1,"sudo":true}`, "invalid_argument"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := rawCall(t, n.socket, c.method, c.path, c.header, strings.NewReader(c.body))
			require.NotNil(t, body, "a JSON error (status %d)", code)
			assert.Equal(t, c.class, body["class"], "%v", body)
			assert.NotEmpty(t, body["message"])
			assert.GreaterOrEqual(t, code, 400)
		})
	}
	vms, err := n.client.VMM().List(t.Context())
	require.NoError(t, err)
	assert.Empty(t, vms, "nothing was created")
}

// TestCapabilitiesAreTheNodes: the client implements every optional
// interface, and vmm.As / storage.As answer with what the node has.
func TestCapabilitiesAreTheNodes(t *testing.T) {
	full := serve(t, agent.Node{VMM: vfake.New()}).client
	_, ok := vmm.As[vmm.Migrator](full.VMM())
	assert.True(t, ok, "the fake migrates")
	bare := serve(t, agent.Node{VMM: vmmOnly{vfake.New()}}).client
	_, ok = vmm.As[vmm.Migrator](bare.VMM())
	assert.False(t, ok, "a driver without Migrator (LXD)")
	_, ok = vmm.As[vmm.Driver](bare.VMM())
	assert.True(t, ok)
	none := serve(t, agent.Node{}).client
	_, ok = vmm.As[vmm.Driver](none.VMM())
	assert.False(t, ok, "a node without a hypervisor")
	_, err := none.VMM().List(t.Context())
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)

	h, err := full.Hello(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"Driver", "Consoler", "DiskAttacher", "DiskCopier", "DiskResizer", "EventWatcher", "GuestAgent", "IncomingPreparer", "Limiter", "MigrationAborter", "Migrator", "Rescuer", "Resizer", "Snapshotter", "UsageReporter"}, h.Capabilities.VMM)
	assert.Equal(t, []string{"file"}, h.Capabilities.PoolDrivers)
	assert.False(t, h.Capabilities.Exec)
	assert.False(t, h.Capabilities.Upload)
}

// TestExtraServices: a service mounted under /v1/x/{name}/ gets the
// caller's deadline and its own paths; an unknown one is refused.
func TestExtraServices(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ok := r.Context().Deadline()
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(r.Method + " " + r.URL.Path + " " + string(b) + " deadline=" + map[bool]string{true: "yes", false: "no"}[ok]))
	})
	n := serve(t, agent.Node{}, func(sc *agent.ServerConfig, _ *agent.ClientConfig) { sc.Extra = map[string]http.Handler{"echo": echo} })
	resp, err := n.client.Extra(t.Context(), "echo", http.MethodPost, "/status", bytes.NewReader([]byte("hi")))
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusTeapot, resp.StatusCode, "the service's own status")
	assert.Equal(t, "POST /status hi deadline=yes", string(b))

	_, err = n.client.Extra(t.Context(), "bgp", http.MethodGet, "/", nil)
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
	h, err := n.client.Hello(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"echo"}, h.Capabilities.Extra)

	_, err = agent.NewServer(agent.ServerConfig{Extra: map[string]http.Handler{"Bad/Name": echo}})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

package scripts_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/fake"
)

type recordingDeliverer struct {
	mu  sync.Mutex
	got []scripts.Delivery
	err error
}

func (d *recordingDeliverer) Deliver(_ context.Context, m scripts.Delivery) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, m)
	return d.err
}

func dbScript() scripts.Script {
	return scripts.Script{
		ID: "db", Name: "db", Owner: "provider", Visibility: scripts.Everyone, Kind: scripts.Shell,
		Body:    "echo creating\nprintf '%s\\n' \"$DB_NAME\"\nprintf '%s\\n' \"$DB_PASSWORD\"\n",
		Params:  []scripts.Param{{Name: "DB_NAME", Type: scripts.String, Required: true}, {Name: "DB_PASSWORD", Type: scripts.Password, Generate: 16}},
		Targets: scripts.TargetFilter{AllOf: []string{"linux"}},
		Notice:  "Database {{.Values.DB_NAME}} on {{index .Targets 0}}: password {{.Values.DB_PASSWORD}}",
	}
}

func TestExecutorRunsMasksAndDelivers(t *testing.T) {
	r := fake.New()
	var logs bytes.Buffer
	d := &recordingDeliverer{}
	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: r}, scripts.WithDeliverer(d),
		scripts.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))), scripts.WithParallel(2))
	require.NoError(t, err)
	var chunks []scripts.OutputChunk
	var mu sync.Mutex
	targets := []scripts.Target{{Name: "vm1", Tags: []string{"linux"}}, {Name: "vm2", Tags: []string{"linux"}}, {Name: "vm3", Tags: []string{"linux"}}}
	r.Fail("vm3", virtplane.Errorf(virtplane.ErrUnavailable, "vm3 unreachable"))
	res, err := ex.Run(t.Context(), scripts.RunRequest{
		Script: dbScript(), User: "customer", Args: map[string]string{"DB_NAME": "shop"}, Targets: targets,
		NotifyEmail: "customer@example.test", Timeout: time.Minute,
		OnOutput: func(c scripts.OutputChunk) { mu.Lock(); chunks = append(chunks, c); mu.Unlock() },
	})
	require.NoError(t, err)
	require.Len(t, res.Targets, 3)
	for _, tr := range res.Targets[:2] {
		assert.Equal(t, scripts.Succeeded, tr.Status)
		assert.Equal(t, "creating\nshop\n"+scripts.Mask+"\n", tr.Stdout)
	}
	assert.Equal(t, scripts.Errored, res.Targets[2].Status)
	assert.Contains(t, res.Targets[2].Error, "unreachable")
	assert.False(t, res.Succeeded())

	calls := r.Calls()
	require.NotEmpty(t, calls)
	var password string
	for _, v := range calls[0].Script.Values {
		if v.Name == "DB_PASSWORD" {
			password = v.Value
		}
	}
	require.Len(t, password, 16, "a password was generated")
	var streamed strings.Builder
	for _, c := range chunks {
		streamed.Write(c.Data)
	}
	for _, where := range []string{fmt.Sprintf("%+v", res), logs.String(), streamed.String()} {
		assert.NotContains(t, where, password)
	}
	require.Len(t, d.got, 1)
	assert.Equal(t, "customer@example.test", d.got[0].To)
	assert.NotContains(t, d.got[0].Body, password, "failed run: no notice")
	assert.True(t, res.Delivered)

	// All targets up: the notice with the real password goes to the user only.
	res, err = ex.Run(t.Context(), scripts.RunRequest{Script: dbScript(), User: "customer",
		Args: map[string]string{"DB_NAME": "shop", "DB_PASSWORD": "Chosen-Pw-1"}, Targets: targets[:1], NotifyEmail: "customer@example.test"})
	require.NoError(t, err)
	require.True(t, res.Succeeded())
	require.Len(t, d.got, 2)
	assert.Contains(t, d.got[1].Body, "Database shop on vm1: password Chosen-Pw-1")
	assert.NotContains(t, fmt.Sprintf("%+v", res), "Chosen-Pw-1")
}

func TestExecutorRefuses(t *testing.T) {
	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: fake.New()})
	require.NoError(t, err)
	s := dbScript()
	linux := []scripts.Target{{Name: "vm1", Tags: []string{"linux"}}}
	for _, tc := range []struct {
		name string
		req  scripts.RunRequest
		want error
	}{
		{"private script of another user", scripts.RunRequest{Script: func() scripts.Script { p := s; p.Visibility = scripts.Private; return p }(), User: "customer", Targets: linux, Args: map[string]string{"DB_NAME": "x"}}, virtplane.ErrPermissionDenied},
		{"target outside the filter", scripts.RunRequest{Script: s, User: "customer", Targets: []scripts.Target{{Name: "win1", Tags: []string{"windows"}}}, Args: map[string]string{"DB_NAME": "x"}}, virtplane.ErrPermissionDenied},
		{"no targets", scripts.RunRequest{Script: s, User: "customer", Args: map[string]string{"DB_NAME": "x"}}, virtplane.ErrInvalidArgument},
		{"duplicate target", scripts.RunRequest{Script: s, User: "customer", Targets: append(linux, linux...), Args: map[string]string{"DB_NAME": "x"}}, virtplane.ErrInvalidArgument},
		{"missing parameter", scripts.RunRequest{Script: s, User: "customer", Targets: linux}, virtplane.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ex.Run(t.Context(), tc.req)
			require.ErrorIs(t, err, tc.want)
		})
	}
	_, err = scripts.NewExecutor(scripts.ExecutorConfig{})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

func TestExecutorTimeoutAndOutputLimit(t *testing.T) {
	r := fake.New()
	r.SetHandler("vm1", func(ctx context.Context, job scripts.Job, stdout, _ io.Writer) (int, error) {
		_, _ = io.WriteString(stdout, strings.Repeat("x", 100))
		<-ctx.Done()
		return -1, nil
	})
	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: r}, scripts.WithMaxOutput(10))
	require.NoError(t, err)
	s := scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell, Body: "sleep 100\n"}
	res, err := ex.Run(t.Context(), scripts.RunRequest{Script: s, User: "o", Targets: []scripts.Target{{Name: "vm1"}}, Timeout: 50 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, scripts.TimedOut, res.Targets[0].Status)
	assert.Equal(t, -1, res.Targets[0].ExitCode)
	assert.Equal(t, strings.Repeat("x", 10), res.Targets[0].Stdout)
	assert.True(t, res.Targets[0].Truncated)
}

// Package scripttest is the conformance suite every scripts.Runner passes:
// the fake runner and the SSH runner run it against a real sshd, on
// loopback and inside a network namespace.
//
//	func TestConformance(t *testing.T) {
//		scripttest.Run(t, func(t *testing.T) scripttest.Harness {
//			r := fake.New()
//			return scripttest.Harness{Runner: r, Target: scripts.Target{Name: "vm1"},
//				ProcessAlive: func(_ context.Context, s string) (bool, error) { return r.Running(s), nil }}
//		})
//	}
//
// The scripts it runs stay inside the subset the fake interprets (echo,
// printf of one variable, sleep, exit), so that the fake is held to the
// behaviour of a real shell.
package scripttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
)

// Harness is one runner and a target it reaches.
type Harness struct {
	Runner scripts.Runner
	Target scripts.Target
	// ProcessAlive reports whether a process whose command line contains
	// substr runs on the target (pgrep -f over a second session for SSH). The
	// suite uses it to prove that timeouts and cancels kill the script.
	ProcessAlive func(ctx context.Context, substr string) (bool, error)
}

// Run runs the suite; newHarness is called once per subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("OutputAndExitCode", func(t *testing.T) { testOutput(t, newHarness(t)) })
	t.Run("ExitCodes", func(t *testing.T) { testExitCodes(t, newHarness(t)) })
	t.Run("ValuesAreData", func(t *testing.T) { testValuesAreData(t, newHarness(t)) })
	t.Run("Streams", func(t *testing.T) { testStreams(t, newHarness(t)) })
	t.Run("TimeoutKillsProcess", func(t *testing.T) { testTimeout(t, newHarness(t)) })
	t.Run("CancelKillsProcess", func(t *testing.T) { testCancel(t, newHarness(t)) })
	t.Run("HiddenValuesMasked", func(t *testing.T) { testHidden(t, newHarness(t)) })
}

func script(name, body string, params ...scripts.Param) scripts.Script {
	return scripts.Script{ID: name, Name: name, Owner: "owner", Visibility: scripts.Private, Kind: scripts.Shell, Body: body, Params: params}
}

func render(t *testing.T, s scripts.Script, args map[string]string, globals ...scripts.Variable) scripts.Rendered {
	t.Helper()
	r, err := scripts.Render(s, scripts.RenderInput{Args: args, Globals: globals})
	require.NoError(t, err)
	return r
}

// syncBuffer is a bytes.Buffer safe for the runner's writer goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	on  func(string)
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.on != nil {
		b.on(b.buf.String())
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testOutput(t *testing.T, h Harness) {
	var out, errOut syncBuffer
	code, err := h.Runner.Run(t.Context(), scripts.Job{
		Target: h.Target, Timeout: time.Minute, Stdout: &out, Stderr: &errOut,
		Script: render(t, script("output", "echo hello world\necho oops >&2\necho bye\n"), nil),
	})
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	assert.Equal(t, "hello world\nbye\n", out.String())
	assert.Equal(t, "oops\n", errOut.String())
}

func testExitCodes(t *testing.T, h Harness) {
	for _, tc := range []struct {
		body string
		want int
	}{
		{"exit 0\n", 0},
		{"echo x\nexit 3\n", 3},
		{"exit 255\n", 255},
		{"no_such_command_xyz\n", 127},
	} {
		code, err := h.Runner.Run(t.Context(), scripts.Job{Target: h.Target, Timeout: time.Minute,
			Script: render(t, script("exit", tc.body), nil)})
		require.NoError(t, err, tc.body)
		assert.Equal(t, tc.want, code, tc.body)
	}
}

func testValuesAreData(t *testing.T, h Harness) {
	nasty := []string{
		`'; echo INJECTED; '`,
		`$(echo INJECTED)`,
		"`echo INJECTED`",
		"line1\nline2; echo INJECTED",
		`"; echo INJECTED; "`,
		`\'; echo INJECTED #`,
		"ünïcødé ‘quoted’ $HOME ${PATH} %s %n",
	}
	for _, v := range nasty {
		var out syncBuffer
		s := script("values", "printf '%s\\n' \"$GREETING\"\n",
			scripts.Param{Name: "GREETING", Type: scripts.String, Required: true})
		code, err := h.Runner.Run(t.Context(), scripts.Job{Target: h.Target, Timeout: time.Minute, Stdout: &out,
			Script: render(t, s, map[string]string{"GREETING": v})})
		require.NoError(t, err)
		assert.Equal(t, 0, code)
		assert.Equal(t, v+"\n", out.String(), "value must arrive unchanged")
	}
}

func testStreams(t *testing.T, h Harness) {
	firstSeen := make(chan string, 1)
	out := &syncBuffer{on: func(s string) {
		select {
		case firstSeen <- s:
		default:
		}
	}}
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		defer close(done)
		code, err = h.Runner.Run(t.Context(), scripts.Job{Target: h.Target, Timeout: time.Minute, Stdout: out,
			Script: render(t, script("stream", "echo first\nsleep 3\necho second\n"), nil)})
	}()
	select {
	case s := <-firstSeen:
		// The first line arrived while the script still slept: streamed,
		// not collected at the end.
		assert.Equal(t, "first\n", s)
		select {
		case <-done:
			t.Fatal("run ended before the streamed line was observed")
		default:
		}
	case <-done:
		t.Fatalf("run ended (%d, %v) before any output streamed", code, err)
	}
	<-done
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	assert.Equal(t, "first\nsecond\n", out.String())
}

func marker() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	// A fractional sleep with random digits names the process uniquely.
	return fmt.Sprintf("sleep 97%d.%d1", b[0]%10, uint32(b[0])<<16|uint32(b[1])<<8|uint32(b[2]))
}

func requireGone(t *testing.T, h Harness, sleepCmd string) {
	t.Helper()
	if h.ProcessAlive == nil {
		t.Fatal("harness has no ProcessAlive")
	}
	// pgrep-style pattern that does not match the pgrep command line itself.
	pattern := "[" + sleepCmd[:1] + "]" + sleepCmd[1:]
	assert.Eventually(t, func() bool {
		alive, err := h.ProcessAlive(context.WithoutCancel(t.Context()), pattern)
		return err == nil && !alive
	}, 15*time.Second, 200*time.Millisecond, "the remote process %q must be killed", sleepCmd)
}

func requireRunning(t *testing.T, h Harness, sleepCmd string) {
	t.Helper()
	pattern := "[" + sleepCmd[:1] + "]" + sleepCmd[1:]
	require.Eventually(t, func() bool {
		alive, err := h.ProcessAlive(context.WithoutCancel(t.Context()), pattern)
		return err == nil && alive
	}, 15*time.Second, 100*time.Millisecond, "the script's process %q never showed up", sleepCmd)
}

func testTimeout(t *testing.T, h Harness) {
	sleepCmd := marker()
	var out syncBuffer
	code, err := h.Runner.Run(t.Context(), scripts.Job{Target: h.Target, Timeout: 2 * time.Second, Stdout: &out,
		Script: render(t, script("timeout", "echo started\n"+sleepCmd+"\necho never\n"), nil)})
	require.ErrorIs(t, err, virtplane.ErrTimeout)
	assert.Equal(t, -1, code)
	assert.Equal(t, "started\n", out.String())
	requireGone(t, h, sleepCmd)
}

func testCancel(t *testing.T, h Harness) {
	sleepCmd := marker()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		defer close(done)
		code, err = h.Runner.Run(ctx, scripts.Job{Target: h.Target, Timeout: time.Minute,
			Script: render(t, script("cancel", sleepCmd+"\necho never\n"), nil)})
	}()
	requireRunning(t, h, sleepCmd)
	cancel()
	<-done
	require.ErrorIs(t, err, virtplane.ErrCanceled)
	assert.Equal(t, -1, code)
	requireGone(t, h, sleepCmd)
}

func testHidden(t *testing.T, h Harness) {
	var logs syncBuffer
	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: h.Runner},
		scripts.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	require.NoError(t, err)
	secret := "s3cr3t-" + hex.EncodeToString([]byte(t.Name()))[:12]
	body := "printf '%s\\n' \"$DB_PASSWORD\"\nprintf '%s\\n' \"$TOKEN\" >&2\n# licence key: LIC-" + secret + "\nexit 4\n"
	s := script("hidden", body, scripts.Param{Name: "DB_PASSWORD", Type: scripts.Password, Required: true})
	s.Visibility, s.BodyHidden = scripts.Everyone, true
	target := h.Target
	res, err := ex.Run(t.Context(), scripts.RunRequest{
		Script: s, User: "someone-else", Targets: []scripts.Target{target}, Timeout: time.Minute,
		Args:    map[string]string{"DB_PASSWORD": secret},
		Globals: []scripts.Variable{{Name: "TOKEN", Value: "tok-" + secret, Scope: scripts.Global, Hidden: true}},
	})
	require.NoError(t, err)
	require.Len(t, res.Targets, 1)
	tr := res.Targets[0]
	assert.Equal(t, scripts.Failed, tr.Status)
	assert.Equal(t, 4, tr.ExitCode)
	assert.Equal(t, scripts.Mask+"\n", tr.Stdout, "hidden value is masked")
	assert.Equal(t, scripts.Mask+"\n", tr.Stderr)
	everything := fmt.Sprintf("%+v %#v %s", res, res, logs.String())
	for _, leak := range []string{secret, "tok-", "LIC-", "licence key", "$DB_PASSWORD"} {
		assert.NotContains(t, everything, leak)
	}
}

package daemon_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/scripts"
)

// FuzzScriptArgsThroughTheAPI sends arbitrary parameter values through the
// whole API path — JSON request, validation, the durable task, rendering,
// the node runner, bash on this host (the local node) — and checks that
// each arrives at the script as data: the script prints it back byte for
// byte (after JSON's own decoding, which turns invalid UTF-8 into U+FFFD),
// or the request is refused naming body.args (a NUL byte, a value too
// long). A hidden second value is masked wherever it shows.
func FuzzScriptArgsThroughTheAPI(f *testing.F) {
	testenv.SkipShort(f)
	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(f), Instance: "fuzz", DataDir: f.TempDir(), LocalDriver: fakeLocalHypervisor})
	require.NoError(f, err)
	admin := serveAdmin(f, srv)
	ctx := context.Background()
	node := localNode(f, admin)
	sc, err := admin.CreateScript(ctx, scriptrun.ScriptBody{Name: "echo-arg", Kind: "shell",
		Body:   "printf '%s' \"$P\"\nprintf '%s' \"$SECRET\" >&2\n",
		Params: []scriptrun.Param{{Name: "P", Type: "string"}, {Name: "SECRET", Type: "password"}}})
	require.NoError(f, err)
	for _, seed := range [][2]string{
		{"plain", "pw"},
		{"'; touch /tmp/vpt-fuzz-pwned; '", "$(id)"},
		{"$(touch /tmp/vpt-fuzz-pwned)`id`${IFS}*", "x"},
		{"line1\nline2\r\n\"quoted\" \\ back", ""},
		{"\xcf", "\x80"},
		{"nul\x00byte", "q"},
		{"secret inside: hunter2", "hunter2"},
		{"{{ lookup('pipe','id') }} %s %n", "‘typo’"},
		{strings.Repeat("x", 70000), ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, p, q string) {
		// What the daemon receives: JSON carries text.
		wire, err := json.Marshal(map[string]string{"P": p, "SECRET": q})
		require.NoError(t, err)
		var got map[string]string
		require.NoError(t, json.Unmarshal(wire, &got))
		wantP, wantQ := got["P"], got["SECRET"]
		run, err := admin.RunScript(ctx, sc.ID, scriptrun.RunBody{NodeIDs: []string{node.ID}, Args: map[string]string{"P": p, "SECRET": q}})
		if strings.ContainsRune(wantP+wantQ, 0) || len(wantP) > 65536 || len(wantQ) > 65536 {
			var pr *client.Problem
			require.ErrorAs(t, err, &pr)
			assert.Equal(t, http.StatusUnprocessableEntity, pr.Status)
			assert.Equal(t, "body.args", pr.Field())
			if wantQ != "" && strings.ContainsRune(wantQ, 0) {
				assert.NotContains(t, pr.Error(), wantQ, "the hidden value is not quoted")
			}
			return
		}
		require.NoError(t, err)
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		task, err := admin.WaitTask(wctx, run.Task.ID)
		require.NoError(t, err)
		rec, err := admin.GetScriptRun(ctx, run.Run.ID)
		require.NoError(t, err)
		require.NoError(t, client.TaskError(task), "%+v", rec.Targets)
		require.Len(t, rec.Targets, 1)
		masker := scripts.NewMasker(wantQ)
		assert.Equal(t, masker.String(wantP), rec.Targets[0].Stdout, "the value reached the script as data")
		if wantQ != "" {
			assert.Equal(t, scripts.Mask, rec.Targets[0].Stderr, "the hidden value is masked")
		}
	})
}

package scriptrun

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	xssh "golang.org/x/crypto/ssh"

	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/scripts"
)

type recordedLines struct {
	mu     sync.Mutex
	writes [][]string
}

func (r *recordedLines) LogLines(_ context.Context, lines ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, append([]string(nil), lines...))
	return nil
}

func (r *recordedLines) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, w := range r.writes {
		out = append(out, w...)
	}
	return out
}

// TestTaskLogAssemblesLines: chunks split anywhere become whole lines per
// target and stream, an unterminated tail is written at the end, a line
// without end is cut, and the log stops growing at its cap.
func TestTaskLogAssemblesLines(t *testing.T) {
	rec := &recordedLines{}
	l := newTaskLog(rec)
	l.start(t.Context())
	for _, c := range []scripts.OutputChunk{
		{Target: "vm1", Stream: "stdout", Data: []byte("hel")},
		{Target: "vm2", Stream: "stdout", Data: []byte("other\n")},
		{Target: "vm1", Stream: "stdout", Data: []byte("lo\nwor")},
		{Target: "vm1", Stream: "stderr", Data: []byte("oops\n")},
		{Target: "vm1", Stream: "stdout", Data: []byte("ld")},
	} {
		l.output(c)
	}
	l.stop()
	assert.Equal(t, []string{"[vm2 stdout] other", "[vm1 stdout] hello", "[vm1 stderr] oops", "[vm1 stdout] world"}, rec.all())

	rec = &recordedLines{}
	l = newTaskLog(rec)
	l.start(t.Context())
	l.output(scripts.OutputChunk{Target: "n", Stream: "stdout", Data: []byte(strings.Repeat("x", maxLineLen+10) + "\n")})
	for range maxLogLines + 10 {
		l.output(scripts.OutputChunk{Target: "n", Stream: "stdout", Data: []byte("y\n")})
	}
	l.stop()
	got := rec.all()
	require.Len(t, got, maxLogLines+1)
	assert.Equal(t, len("[n stdout] ")+maxLineLen, len(got[0]), "a long line is cut")
	assert.Equal(t, "[n stdout] "+strings.Repeat("x", 10), got[1])
	assert.Equal(t, "(output beyond this is in the run's result only)", got[len(got)-1])
}

func TestVMKeysAreTheVMsOwnAndSharedByDaemons(t *testing.T) {
	st := dbtest.SQLite(t)
	a, b := &vmKeys{st: st}, &vmKeys{st: st}
	k1, err := a.PublicKey(t.Context(), "vm1")
	require.NoError(t, err)
	k1b, err := b.PublicKey(t.Context(), "vm1")
	require.NoError(t, err)
	k2, err := a.PublicKey(t.Context(), "vm2")
	require.NoError(t, err)
	assert.Equal(t, k1, k1b, "every daemon on the store derives the same key")
	assert.NotEqual(t, k1, k2, "one VM's key opens no other")
	pem, err := a.PrivateKeyPEM(t.Context(), "vm1")
	require.NoError(t, err)
	signer, err := xssh.ParsePrivateKey(pem)
	require.NoError(t, err)
	assert.Equal(t, strings.Fields(k1)[1], strings.Fields(string(xssh.MarshalAuthorizedKey(signer.PublicKey())))[1])
	other := &vmKeys{st: dbtest.SQLite(t)}
	k1c, err := other.PublicKey(t.Context(), "vm1")
	require.NoError(t, err)
	assert.NotEqual(t, k1, k1c, "another store, another seed")
}

func TestHostKeyPin(t *testing.T) {
	signer := func() xssh.PublicKey {
		pem, err := (&vmKeys{st: dbtest.SQLite(t)}).PrivateKeyPEM(t.Context(), "h")
		require.NoError(t, err)
		s, err := xssh.ParsePrivateKey(pem)
		require.NoError(t, err)
		return s.PublicKey()
	}
	k1, k2 := signer(), signer()
	first := &hostKeyPin{}
	require.NoError(t, first.callback("vm", nil, k1), "the first run trusts the key it finds")
	assert.Equal(t, strings.TrimSpace(string(xssh.MarshalAuthorizedKey(k1))), first.observed())
	pinned := &hostKeyPin{pinned: first.observed()}
	require.NoError(t, pinned.callback("vm", nil, k1))
	err := pinned.callback("vm", nil, k2)
	require.Error(t, err, "a changed host key is refused")
	assert.Empty(t, pinned.observed())
}

func TestTagsAndNames(t *testing.T) {
	vm := model.VM{Name: "web", Tags: []string{"debian", "vm"}}
	assert.Equal(t, []string{"vm", "os:linux", "image:debian-12", "debian"}, VMTags(vm, model.Image{Name: "debian-12", OSType: "linux"}))
	assert.Equal(t, []string{"node", "cluster:fra", "virt:kvm", "rack1"}, NodeTags(model.Node{Tags: []string{"rack1"}}, model.Cluster{Name: "fra", VirtType: "kvm"}))
	ts := []target{{Name: "web", ID: "00000000aaaaaaaa"}, {Name: "web", ID: "00000000bbbbbbbb"}, {Name: "db", ID: "c"}}
	assert.Equal(t, "web-aaaaaaaa", uniqueName(ts, 0))
	assert.Equal(t, "web-bbbbbbbb", uniqueName(ts, 1))
	assert.Equal(t, "db", uniqueName(ts, 2))
	long := strings.Repeat("a", 63)
	ts = []target{{Name: long, ID: "11111111"}, {Name: long, ID: "22222222"}}
	n := uniqueName(ts, 0)
	assert.LessOrEqual(t, len(n), 63)
	require.NoError(t, scripts.Target{Name: n}.Validate())
}

func TestScriptViews(t *testing.T) {
	sc := Script{ID: "s", Owner: "alice", Visibility: "everyone", Kind: "shell", Body: "secret body", BodyHidden: true, Notice: "n",
		Params: []Param{{Name: "PW", Type: "password", Default: "d"}, {Name: "X", Type: "string", Default: "x"}}}
	for _, tc := range []struct {
		who      string
		role     model.Role
		redacted bool
	}{{"alice", model.RoleUser, false}, {"root", model.RoleAdmin, false}, {"bob", model.RoleUser, true}} {
		v := sc.viewFor(principal(tc.who, tc.role))
		assert.Equal(t, tc.redacted, v.Redacted, tc.who)
		if tc.redacted {
			assert.Empty(t, v.Body)
			assert.Empty(t, v.Notice)
			assert.Empty(t, v.Params[0].Default)
			assert.Equal(t, "x", v.Params[1].Default)
		} else {
			assert.Equal(t, "secret body", v.Body)
		}
	}
	assert.Equal(t, "d", sc.Params[0].Default, "a view changes no original")
	private := sc
	private.Visibility = "private"
	assert.False(t, private.canRun(principal("bob", model.RoleUser)))
	assert.True(t, private.canRun(principal("root", model.RoleAdmin)))
	assert.NotContains(t, sc.String(), "secret body")
}

func principal(id string, role model.Role) auth.Principal {
	return auth.Principal{UserID: id, Role: role}
}

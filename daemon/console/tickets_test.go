package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/store"
)

func TestTickets(t *testing.T) {
	ctx := t.Context()
	st := dbtest.SQLite(t)
	tk := NewTickets(st, 30*time.Second)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tk.now = func() time.Time { return now }

	s1, exp, err := tk.Issue(ctx, "vm1", "alice")
	require.NoError(t, err)
	assert.Equal(t, now.Add(30*time.Second), exp)
	got, err := tk.Redeem(ctx, s1, "vm1")
	require.NoError(t, err)
	assert.Equal(t, Ticket{VMID: "vm1", UserID: "alice", Expires: exp}, got)
	_, err = tk.Redeem(ctx, s1, "vm1")
	assert.ErrorIs(t, err, virtplane.ErrPermissionDenied, "used once")

	s2, _, err := tk.Issue(ctx, "vm1", "alice")
	require.NoError(t, err)
	_, err = tk.Redeem(ctx, s2, "vm2")
	assert.ErrorIs(t, err, virtplane.ErrPermissionDenied, "another VM")
	_, err = tk.Redeem(ctx, s2, "vm1")
	assert.ErrorIs(t, err, virtplane.ErrPermissionDenied, "a misdirected ticket is used up")

	s3, _, err := tk.Issue(ctx, "vm1", "alice")
	require.NoError(t, err)
	now = now.Add(31 * time.Second)
	_, err = tk.Redeem(ctx, s3, "vm1")
	assert.ErrorIs(t, err, virtplane.ErrPermissionDenied, "expired")
	_, err = tk.Redeem(ctx, "vptc_guessed", "vm1")
	assert.ErrorIs(t, err, virtplane.ErrPermissionDenied)

	// A ticket never redeemed goes with its user's next issue once expired.
	_, _, err = tk.Issue(ctx, "vm1", "alice")
	require.NoError(t, err)
	_, _, err = tk.Issue(ctx, "vm1", "bob")
	require.NoError(t, err)
	now = now.Add(time.Minute)
	_, _, err = tk.Issue(ctx, "vm1", "alice")
	require.NoError(t, err)
	objs, err := st.ListObjects(ctx, store.KindConsoleTicket, store.ListOptions{Owner: "alice"})
	require.NoError(t, err)
	assert.Len(t, objs, 1, "alice's expired ticket is gone, her fresh one stays")
	all, err := st.ListObjects(ctx, store.KindConsoleTicket, store.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, all, 2, "bob's is his to sweep")
	for _, o := range all {
		assert.NotContains(t, string(o.Data), "vptc_", "the store holds no secret")
		assert.Len(t, o.ID, 64, "tickets are kept by their SHA-256")
	}
}

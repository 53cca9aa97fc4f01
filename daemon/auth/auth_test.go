package auth_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

func TestPasswordHash(t *testing.T) {
	h, err := auth.HashPassword("correct horse")
	require.NoError(t, err)
	assert.Contains(t, h, "$argon2id$")
	assert.True(t, auth.CheckPassword(h, "correct horse"))
	assert.False(t, auth.CheckPassword(h, "correct horsE"))
	for _, bad := range []string{"", "$argon2id$", "$bcrypt$x$y$z$w", h[:len(h)-3] + "!!!"} {
		assert.False(t, auth.CheckPassword(bad, "correct horse"), bad)
	}
}

func TestUsersAndTokens(t *testing.T) {
	ctx := t.Context()
	a := auth.New(dbtest.SQLite(t))
	u, err := a.CreateUser(ctx, "alice", "long-enough", model.RoleUser)
	require.NoError(t, err)
	_, err = a.CreateUser(ctx, "alice", "long-enough", model.RoleUser)
	assert.ErrorIs(t, err, virtplane.ErrAlreadyExists)
	for _, tc := range []struct {
		name, pw string
		role     model.Role
	}{
		{"Bad Name", "long-enough", model.RoleUser},
		{"bob", "short", model.RoleUser},
		{"bob", "long-enough", "root"},
	} {
		_, err := a.CreateUser(ctx, tc.name, tc.pw, tc.role)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, tc)
	}

	got, err := a.SignIn(ctx, "alice", "long-enough")
	require.NoError(t, err)
	assert.Equal(t, u.ID, got.ID)
	_, err = a.SignIn(ctx, "alice", "wrong-password")
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
	_, err = a.SignIn(ctx, "nobody", "long-enough")
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)

	secret, tok, err := a.IssueToken(ctx, u.ID, "billing", 0)
	require.NoError(t, err)
	p, err := a.Verify(ctx, secret)
	require.NoError(t, err)
	assert.Equal(t, auth.Principal{UserID: u.ID, Name: "alice", Role: model.RoleUser}, p)
	assert.False(t, p.Admin())
	assert.True(t, p.CanAccess(u.ID))
	assert.False(t, p.CanAccess("someone-else"))
	assert.False(t, p.CanAccess(""), "shared objects are the admins'")

	toks, err := a.Tokens(ctx, u.ID)
	require.NoError(t, err)
	require.Len(t, toks, 1)
	assert.Equal(t, tok.ID, toks[0].ID)

	require.NoError(t, a.RevokeToken(ctx, u.ID, tok.ID))
	_, err = a.Verify(ctx, secret)
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
	assert.ErrorIs(t, a.RevokeToken(ctx, u.ID, tok.ID), virtplane.ErrNotFound)

	short, _, err := a.IssueToken(ctx, u.ID, "short", time.Nanosecond)
	require.NoError(t, err)
	time.Sleep(time.Millisecond)
	_, err = a.Verify(ctx, short)
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated, "expired")
	_, err = a.Verify(ctx, "not-a-token")
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
	_, _, err = a.IssueToken(ctx, "no-such-user", "x", 0)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

// A verified token is served from memory, but revoking it or deleting its
// user through the service takes effect at once.
func TestVerifyCacheForgetsRevokedTokens(t *testing.T) {
	ctx := t.Context()
	st := dbtest.SQLite(t)
	a := auth.New(st)
	u, err := a.CreateUser(ctx, "carol", "a-long-password", model.RoleUser)
	require.NoError(t, err)
	secret, tok, err := a.IssueToken(ctx, u.ID, "cli", 0)
	require.NoError(t, err)
	p, err := a.Verify(ctx, secret)
	require.NoError(t, err)
	assert.Equal(t, u.ID, p.UserID)
	require.NoError(t, a.RevokeToken(ctx, u.ID, tok.ID))
	_, err = a.Verify(ctx, secret)
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)

	secret2, _, err := a.IssueToken(ctx, u.ID, "cli2", 0)
	require.NoError(t, err)
	_, err = a.Verify(ctx, secret2)
	require.NoError(t, err)
	// Deleted behind the service's back (another daemon): trusted until the
	// TTL, refused after Forget.
	require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.DeleteObject(ctx, store.KindUser, u.ID, 0) }))
	_, err = a.Verify(ctx, secret2)
	assert.NoError(t, err, "cached within the TTL")
	a.Forget(u.ID)
	_, err = a.Verify(ctx, secret2)
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
}

// Package directorytest is the conformance suite of auth.Directory: the
// fake and the LDAP directory (against a real slapd) pass the same checks,
// so the fake can stand in for a directory in tests of what signs users in.
//
//	directorytest.Run(t, func(t *testing.T) (auth.Directory, directorytest.Admin) {
//		d := auth.NewFakeDirectory()
//		return d, d
//	})
package directorytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/auth"
)

// Admin changes the directory under test, as its administrator would.
type Admin interface {
	// AddUser adds a user with a password, member of groups (made when
	// missing).
	AddUser(ctx context.Context, name, password string, groups ...string) error
	// RemoveUser deletes a user and their group memberships.
	RemoveUser(ctx context.Context, name string) error
}

// Factory returns a directory and its admin. A real directory may be
// shared: the suite's names carry a random suffix.
type Factory func(t *testing.T) (auth.Directory, Admin)

func suffix(t *testing.T) string {
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("PasswordAndGroups", func(t *testing.T) {
		d, a := factory(t)
		ctx := t.Context()
		s := suffix(t)
		name, admins, users := "dt-"+s, "dt-admins-"+s, "dt-users-"+s
		require.NoError(t, a.AddUser(ctx, name, "right-password", users, admins))
		t.Cleanup(func() { _ = a.RemoveUser(context.Background(), name) })
		u, err := d.Authenticate(ctx, name, "right-password")
		require.NoError(t, err)
		assert.Equal(t, name, u.Name)
		assert.NotEmpty(t, u.DN)
		assert.Equal(t, []string{admins, users}, u.Groups, "sorted")
		for _, pw := range []string{"wrong-password", "", "right-password "} {
			_, err = d.Authenticate(ctx, name, pw)
			assert.ErrorIs(t, err, virtplane.ErrUnauthenticated, "password %q", pw)
		}
		_, err = d.Authenticate(ctx, "dt-nobody-"+s, "right-password")
		assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
		_, err = d.Authenticate(ctx, "", "")
		assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
		got, err := d.Lookup(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, u, got)
	})
	t.Run("NoGroups", func(t *testing.T) {
		d, a := factory(t)
		ctx := t.Context()
		name := "dt-plain-" + suffix(t)
		require.NoError(t, a.AddUser(ctx, name, "plain-password"))
		t.Cleanup(func() { _ = a.RemoveUser(context.Background(), name) })
		u, err := d.Authenticate(ctx, name, "plain-password")
		require.NoError(t, err)
		assert.Empty(t, u.Groups)
	})
	t.Run("FilterInjection", func(t *testing.T) {
		d, a := factory(t)
		ctx := t.Context()
		name := "dt-inj-" + suffix(t)
		require.NoError(t, a.AddUser(ctx, name, "inj-password"))
		t.Cleanup(func() { _ = a.RemoveUser(context.Background(), name) })
		for _, n := range []string{"*", "dt-inj-*", name + ")(uid=*", "*)(|(uid=*"} {
			_, err := d.Authenticate(ctx, n, "inj-password")
			assert.ErrorIs(t, err, virtplane.ErrUnauthenticated, "name %q", n)
			_, err = d.Lookup(ctx, n)
			assert.ErrorIs(t, err, virtplane.ErrNotFound, "name %q", n)
		}
	})
	t.Run("Removed", func(t *testing.T) {
		d, a := factory(t)
		ctx := t.Context()
		s := suffix(t)
		name, group := "dt-gone-"+s, "dt-g-"+s
		require.NoError(t, a.AddUser(ctx, name, "gone-password", group))
		_, err := d.Lookup(ctx, name)
		require.NoError(t, err)
		require.NoError(t, a.RemoveUser(ctx, name))
		_, err = d.Lookup(ctx, name)
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
		_, err = d.Authenticate(ctx, name, "gone-password")
		assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
		// Added again, in no group: the old membership is gone too.
		require.NoError(t, a.AddUser(ctx, name, "new-password"))
		t.Cleanup(func() { _ = a.RemoveUser(context.Background(), name) })
		u, err := d.Lookup(ctx, name)
		require.NoError(t, err)
		assert.Empty(t, u.Groups)
	})
}

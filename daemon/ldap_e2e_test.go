package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/auth/directorytest"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// TestLDAPUsersSignIn through the API with a real OpenLDAP slapd over
// StartTLS: a directory user signs in with their password and gets the
// role of their group; once removed from the directory, the daemon's sync
// disables them and their token stops working.
func TestLDAPUsersSignIn(t *testing.T) {
	slapd := directorytest.RequireSlapd(t)
	ctx := t.Context()
	dir, err := auth.NewLDAPDirectory(auth.LDAPConfig{URL: slapd.Env.URL, TLS: slapd.TLS,
		BindDN: slapd.Env.AdminDN, BindPassword: slapd.Env.AdminPassword, UserBase: slapd.UserBase(), GroupBase: slapd.GroupBase()})
	require.NoError(t, err)
	sfx := store.NewID()[16:] // the directory is shared: names of this run
	admins, customers := "vpt-ops-"+sfx, "vpt-customers-"+sfx
	ops, cust := "ops-"+sfx, "cust-"+sfx
	require.NoError(t, slapd.AddUser(ctx, ops, "ops-password", admins))
	require.NoError(t, slapd.AddUser(ctx, cust, "cust-password", customers))
	t.Cleanup(func() {
		_ = slapd.RemoveUser(context.Background(), ops)
		_ = slapd.RemoveUser(context.Background(), cust)
	})

	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "ldap", DataDir: t.TempDir(),
		Directory: dir, DirectoryRoles: auth.LDAPRoles{AdminGroups: []string{admins}, UserGroups: []string{customers}},
		DirectorySync: 100 * time.Millisecond})
	require.NoError(t, err)
	url := serve(t, srv)
	anon := client.New(url, "")

	opsToken, err := anon.Login(ctx, ops, "ops-password")
	require.NoError(t, err)
	var me model.User
	require.NoError(t, client.New(url, opsToken).Do(ctx, "GET", "/v1/me", nil, &me))
	assert.Equal(t, model.RoleAdmin, me.Role)
	assert.Equal(t, auth.SourceLDAP, me.Source)

	custToken, err := anon.Login(ctx, cust, "cust-password")
	require.NoError(t, err)
	c := client.New(url, custToken)
	require.NoError(t, c.Do(ctx, "GET", "/v1/me", nil, &me))
	assert.Equal(t, model.RoleUser, me.Role)
	err = c.Do(ctx, "GET", "/v1/users", nil, nil)
	wantProblem(t, err, 403, "")
	_, err = anon.Login(ctx, cust, "wrong-password")
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)

	// Removed from the directory: within a few syncs the token stops working.
	require.NoError(t, slapd.RemoveUser(ctx, cust))
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = c.Do(ctx, "GET", "/v1/me", nil, nil)
		if err != nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the removed user's token still works after 10 s")
		time.Sleep(50 * time.Millisecond)
	}
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
	_, err = anon.Login(ctx, cust, "cust-password")
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
	require.NoError(t, client.New(url, opsToken).Do(ctx, "GET", "/v1/me", nil, nil), "the other user is untouched")
}

package auth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/auth/directorytest"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/internal/testenv"
)

func TestFakeDirectoryConformance(t *testing.T) {
	directorytest.Run(t, func(t *testing.T) (auth.Directory, directorytest.Admin) {
		d := auth.NewFakeDirectory()
		return d, d
	})
}

// slapd returns the test slapd, a TLS config that trusts its certificate,
// and its admin.
func slapd(t *testing.T) (testenv.LDAP, *tls.Config, *directorytest.Slapd) {
	a := directorytest.RequireSlapd(t)
	return a.Env, a.TLS, a
}

// slapdConfig is the LDAPConfig of the test slapd at url.
func slapdConfig(env testenv.LDAP, tc *tls.Config, url string) auth.LDAPConfig {
	return auth.LDAPConfig{URL: url, TLS: tc, BindDN: env.AdminDN, BindPassword: env.AdminPassword,
		UserBase: "ou=people," + env.Base, GroupBase: "ou=groups," + env.Base}
}

// TestLDAPDirectoryConformance runs the suite against a real OpenLDAP
// slapd, over StartTLS and over LDAPS.
func TestLDAPDirectoryConformance(t *testing.T) {
	env, tc, admin := slapd(t)
	for name, url := range map[string]string{"starttls": env.URL, "ldaps": env.LDAPSURL} {
		t.Run(name, func(t *testing.T) {
			directorytest.Run(t, func(t *testing.T) (auth.Directory, directorytest.Admin) {
				d, err := auth.NewLDAPDirectory(slapdConfig(env, tc, url))
				require.NoError(t, err)
				return d, admin
			})
		})
	}
}

// TestLDAPDirectoryRefusesWhatIsNotSafe: a server whose certificate is not
// trusted is unreachable (never a plaintext fallback); a URL of another
// scheme, or without the bases, is refused.
func TestLDAPDirectoryRefusesWhatIsNotSafe(t *testing.T) {
	env, tc, admin := slapd(t)
	ctx := t.Context()
	require.NoError(t, admin.AddUser(ctx, "tls-check", "tls-password"))
	t.Cleanup(func() { _ = admin.RemoveUser(context.Background(), "tls-check") })
	for _, url := range []string{env.URL, env.LDAPSURL} {
		cfg := slapdConfig(env, &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}, url)
		d, err := auth.NewLDAPDirectory(cfg)
		require.NoError(t, err)
		_, err = d.Authenticate(ctx, "tls-check", "tls-password")
		assert.ErrorIs(t, err, virtplane.ErrUnavailable, url)
	}
	for _, bad := range []auth.LDAPConfig{
		{URL: "http://127.0.0.1", UserBase: "x", GroupBase: "y"},
		{URL: "ldapi:///", UserBase: "x", GroupBase: "y"},
		{URL: env.URL},
	} {
		_, err := auth.NewLDAPDirectory(bad)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "%+v", bad)
	}
	// The right CA, and it works.
	d, err := auth.NewLDAPDirectory(slapdConfig(env, tc, env.URL))
	require.NoError(t, err)
	_, err = d.Authenticate(ctx, "tls-check", "tls-password")
	require.NoError(t, err)
	// A directory that does not answer in time is unavailable.
	d, err = auth.NewLDAPDirectory(slapdConfig(env, tc, env.URL))
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-short.Done()
	_, err = d.Lookup(short, "tls-check")
	assert.ErrorIs(t, err, virtplane.ErrUnavailable)
}

// TestLDAPSignIn over the fake directory: the first sign-in makes the
// account with the role of the user's groups; a user in no group that may
// sign in is refused; a user gone from the directory is disabled by Sync
// and their tokens stop working at once; a changed group changes the
// role; an outage changes nothing; a local account's name is not taken
// over; a user back in the directory signs in again.
func TestLDAPSignIn(t *testing.T) {
	ctx := t.Context()
	st := dbtest.SQLite(t)
	dir := auth.NewFakeDirectory()
	l := auth.NewLDAP(st, dir, auth.LDAPRoles{AdminGroups: []string{"ops"}, UserGroups: []string{"customers"}})
	svc := auth.New(st, auth.WithAuthenticator(l))
	require.NoError(t, dir.AddUser(ctx, "dora", "dora-password", "ops", "customers"))
	require.NoError(t, dir.AddUser(ctx, "eve", "eve-password", "customers"))
	require.NoError(t, dir.AddUser(ctx, "fred", "fred-password", "interns"))

	dora, err := svc.SignIn(ctx, "dora", "dora-password")
	require.NoError(t, err)
	assert.Equal(t, model.RoleAdmin, dora.Role)
	assert.Equal(t, auth.SourceLDAP, dora.Source)
	eve, err := svc.SignIn(ctx, "eve", "eve-password")
	require.NoError(t, err)
	assert.Equal(t, model.RoleUser, eve.Role)
	again, err := svc.SignIn(ctx, "eve", "eve-password")
	require.NoError(t, err)
	assert.Equal(t, eve.ID, again.ID, "one account per directory user")
	_, err = svc.SignIn(ctx, "eve", "wrong-password")
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
	_, err = svc.SignIn(ctx, "fred", "fred-password")
	assert.ErrorIs(t, err, virtplane.ErrPermissionDenied, "in no group that may sign in")
	_, err = svc.SignIn(ctx, "Bad Name", "x")
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)

	secret, _, err := svc.IssueToken(ctx, eve.ID, "billing", 0)
	require.NoError(t, err)
	p, err := svc.Verify(ctx, secret)
	require.NoError(t, err)
	assert.Equal(t, eve.ID, p.UserID)

	// An outage: nothing changes.
	require.NoError(t, dir.RemoveUser(ctx, "eve"))
	dir.Fail(virtplane.Errorf(virtplane.ErrUnavailable, "directory down"))
	assert.ErrorIs(t, svc.SyncDirectories(ctx), virtplane.ErrUnavailable)
	_, err = svc.Verify(ctx, secret)
	require.NoError(t, err, "an outage locks nobody out")
	dir.Fail(nil)

	// Gone: disabled, the token refused at once (not after the cache's TTL).
	require.NoError(t, svc.SyncDirectories(ctx))
	_, err = svc.Verify(ctx, secret)
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)
	_, err = svc.SignIn(ctx, "eve", "eve-password")
	assert.ErrorIs(t, err, virtplane.ErrUnauthenticated)

	// A group change changes the role at the next sync.
	require.NoError(t, dir.AddUser(ctx, "dora", "dora-password", "customers"))
	require.NoError(t, svc.SyncDirectories(ctx))
	o, err := st.GetObject(ctx, "user", dora.ID)
	require.NoError(t, err)
	u, err := auth.DecodeUser(o)
	require.NoError(t, err)
	assert.Equal(t, model.RoleUser, u.Role)

	// Back in the directory: signs in again, same account, enabled.
	require.NoError(t, dir.AddUser(ctx, "eve", "eve-password-2", "customers"))
	back, err := svc.SignIn(ctx, "eve", "eve-password-2")
	require.NoError(t, err)
	assert.Equal(t, eve.ID, back.ID)
	assert.False(t, back.Disabled)
	_, err = svc.Verify(ctx, secret)
	require.NoError(t, err)

	// A local account's name stays the local account's.
	_, err = svc.CreateUser(ctx, "gina", "gina-password", model.RoleUser)
	require.NoError(t, err)
	require.NoError(t, dir.AddUser(ctx, "gina", "other-password", "ops"))
	_, err = svc.SignIn(ctx, "gina", "other-password")
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	local, err := svc.SignIn(ctx, "gina", "gina-password")
	require.NoError(t, err)
	assert.Equal(t, model.RoleUser, local.Role)
}

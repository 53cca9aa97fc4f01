package directorytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
)

// Slapd is the Admin of the test slapd (`make env-ldap`): users under
// ou=people, groups (groupOfNames) under ou=groups, changed as the
// directory's root over LDAPS.
type Slapd struct {
	Env testenv.LDAP
	TLS *tls.Config // trusts the slapd's certificate
}

var _ Admin = (*Slapd)(nil)

// RequireSlapd returns the admin of the slapd `make env-ldap` started.
func RequireSlapd(t testing.TB) *Slapd {
	t.Helper()
	env := testenv.RequireLDAP(t)
	pem, err := os.ReadFile(env.CA)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem), "slapd certificate %s", env.CA)
	return &Slapd{Env: env, TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
}

// UserBase and GroupBase are where the users and groups are.
func (a *Slapd) UserBase() string  { return "ou=people," + a.Env.Base }
func (a *Slapd) GroupBase() string { return "ou=groups," + a.Env.Base }

func (a *Slapd) conn() (*ldap.Conn, error) {
	c, err := ldap.DialURL(a.Env.LDAPSURL, ldap.DialWithTLSConfig(a.TLS))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(10 * time.Second)
	if err := c.Bind(a.Env.AdminDN, a.Env.AdminPassword); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (a *Slapd) userDN(name string) string { return "uid=" + name + "," + a.UserBase() }

// AddUser adds an inetOrgPerson with a password, member of groups.
func (a *Slapd) AddUser(ctx context.Context, name, password string, groups ...string) error {
	c, err := a.conn()
	if err != nil {
		return err
	}
	defer c.Close()
	req := ldap.NewAddRequest(a.userDN(name), nil)
	req.Attribute("objectClass", []string{"inetOrgPerson"})
	req.Attribute("uid", []string{name})
	req.Attribute("cn", []string{name})
	req.Attribute("sn", []string{name})
	req.Attribute("userPassword", []string{password})
	if err := c.Add(req); err != nil {
		return err
	}
	for _, g := range groups {
		dn := "cn=" + g + "," + a.GroupBase()
		add := ldap.NewAddRequest(dn, nil)
		add.Attribute("objectClass", []string{"groupOfNames"})
		add.Attribute("cn", []string{g})
		add.Attribute("member", []string{a.userDN(name)})
		err := c.Add(add)
		if ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
			mod := ldap.NewModifyRequest(dn, nil)
			mod.Add("member", []string{a.userDN(name)})
			err = c.Modify(mod)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// RemoveUser deletes the user and their memberships (a group left without
// a member goes too: a groupOfNames has one).
func (a *Slapd) RemoveUser(ctx context.Context, name string) error {
	c, err := a.conn()
	if err != nil {
		return err
	}
	defer c.Close()
	dn := a.userDN(name)
	res, err := c.Search(ldap.NewSearchRequest(a.GroupBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(member="+ldap.EscapeFilter(dn)+")", []string{"member"}, nil))
	if err != nil {
		return err
	}
	for _, g := range res.Entries {
		if len(g.GetAttributeValues("member")) <= 1 {
			err = c.Del(ldap.NewDelRequest(g.DN, nil))
		} else {
			mod := ldap.NewModifyRequest(g.DN, nil)
			mod.Delete("member", []string{dn})
			err = c.Modify(mod)
		}
		if err != nil {
			return err
		}
	}
	err = c.Del(ldap.NewDelRequest(dn, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil
	}
	return err
}

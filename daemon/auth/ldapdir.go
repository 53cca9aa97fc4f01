package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/virtplane/virtplane"
)

// LDAPConfig says how to reach an LDAP or FreeIPA directory.
type LDAPConfig struct {
	// URL is ldaps://HOST[:PORT] (TLS from the start) or ldap://HOST[:PORT],
	// over which StartTLS is required: passwords never cross in the clear.
	URL string
	// TLS verifies the server (RootCAs; ServerName defaults to the URL's
	// host). Nil: the system's roots.
	TLS *tls.Config
	// BindDN and BindPassword are the service account that looks users and
	// groups up; empty: anonymous searches.
	BindDN, BindPassword string
	// UserBase is where users are (ou=people,dc=example,dc=com; FreeIPA:
	// cn=users,cn=accounts,dc=…), UserAttr their login attribute (default
	// uid).
	UserBase, UserAttr string
	// GroupBase is where groups are (FreeIPA: cn=groups,cn=accounts,dc=…);
	// a user is in a group that names their DN as member or uniqueMember,
	// or their login name as memberUid.
	GroupBase string
	// Timeout bounds each exchange with the server (default 10s).
	Timeout time.Duration
}

// LDAPDirectory is a Directory over LDAP (github.com/go-ldap/ldap/v3): each
// call opens a connection, secures it, looks the user up as the service
// account and, to prove a password, binds as the user.
type LDAPDirectory struct {
	cfg LDAPConfig
	tls *tls.Config
}

var _ Directory = (*LDAPDirectory)(nil)

// NewLDAPDirectory checks cfg and returns the directory; it does not
// connect yet.
func NewLDAPDirectory(cfg LDAPConfig) (*LDAPDirectory, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ldap url %q: want ldaps://HOST[:PORT] or ldap://HOST[:PORT] (StartTLS)", cfg.URL)
	}
	if cfg.UserBase == "" || cfg.GroupBase == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ldap: user base and group base are required")
	}
	if cfg.UserAttr == "" {
		cfg.UserAttr = "uid"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	return &LDAPDirectory{cfg: cfg, tls: tc}, nil
}

// conn opens a secured connection bound as the service account; it is
// closed when ctx ends, which ends any exchange under way.
func (d *LDAPDirectory) conn(ctx context.Context) (*ldap.Conn, func(), error) {
	dialer := &net.Dialer{Timeout: d.cfg.Timeout}
	c, err := ldap.DialURL(d.cfg.URL, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(d.tls))
	if err != nil {
		return nil, nil, unavailable("connect", err)
	}
	timeout := d.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	c.SetTimeout(timeout)
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	done := func() { stop(); _ = c.Close() }
	if strings.HasPrefix(d.cfg.URL, "ldap://") {
		if err := c.StartTLS(d.tls); err != nil {
			done()
			return nil, nil, unavailable("starttls", err)
		}
	}
	if d.cfg.BindDN != "" {
		if err := c.Bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
			done()
			return nil, nil, unavailable("bind as "+d.cfg.BindDN, err)
		}
	}
	return c, done, nil
}

func unavailable(what string, err error) error {
	return virtplane.Errorf(virtplane.ErrUnavailable, "ldap %s: %v", what, err)
}

// find looks a user up; no entry is ErrNotFound.
func (d *LDAPDirectory) find(c *ldap.Conn, name string) (*ldap.Entry, error) {
	filter := "(" + ldap.EscapeFilter(d.cfg.UserAttr) + "=" + ldap.EscapeFilter(name) + ")"
	res, err := c.Search(ldap.NewSearchRequest(d.cfg.UserBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
		filter, []string{"dn", d.cfg.UserAttr}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, unavailable("search "+d.cfg.UserBase, err)
	}
	if res == nil || len(res.Entries) == 0 {
		return nil, virtplane.Errorf(virtplane.ErrNotFound, "directory user %q", name)
	}
	if len(res.Entries) > 1 {
		return nil, virtplane.Errorf(virtplane.ErrConflict, "directory user %q: more than one entry under %s", name, d.cfg.UserBase)
	}
	return res.Entries[0], nil
}

// groups returns the names of the groups of a user, sorted.
func (d *LDAPDirectory) groups(c *ldap.Conn, name, dn string) ([]string, error) {
	filter := "(|(member=" + ldap.EscapeFilter(dn) + ")(uniqueMember=" + ldap.EscapeFilter(dn) + ")(memberUid=" + ldap.EscapeFilter(name) + "))"
	res, err := c.Search(ldap.NewSearchRequest(d.cfg.GroupBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{"cn"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, unavailable("search "+d.cfg.GroupBase, err)
	}
	var out []string
	if res != nil {
		for _, e := range res.Entries {
			if cn := e.GetAttributeValue("cn"); cn != "" {
				out = append(out, cn)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Authenticate binds as the user with password.
func (d *LDAPDirectory) Authenticate(ctx context.Context, name, password string) (DirectoryUser, error) {
	wrong := virtplane.Errorf(virtplane.ErrUnauthenticated, "wrong user name or password")
	// An empty password would be an unauthenticated bind, which servers
	// answer with success.
	if name == "" || password == "" {
		return DirectoryUser{}, wrong
	}
	c, done, err := d.conn(ctx)
	if err != nil {
		return DirectoryUser{}, err
	}
	defer done()
	e, err := d.find(c, name)
	if errors.Is(err, virtplane.ErrNotFound) {
		return DirectoryUser{}, wrong
	}
	if err != nil {
		return DirectoryUser{}, err
	}
	if err := c.Bind(e.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return DirectoryUser{}, wrong
		}
		return DirectoryUser{}, unavailable("bind as "+e.DN, err)
	}
	// Back to the service account, which may read the groups.
	if d.cfg.BindDN != "" {
		if err := c.Bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
			return DirectoryUser{}, unavailable("bind as "+d.cfg.BindDN, err)
		}
	}
	gs, err := d.groups(c, name, e.DN)
	if err != nil {
		return DirectoryUser{}, err
	}
	return DirectoryUser{Name: name, DN: e.DN, Groups: gs}, nil
}

// Lookup finds a user without their password.
func (d *LDAPDirectory) Lookup(ctx context.Context, name string) (DirectoryUser, error) {
	if name == "" {
		return DirectoryUser{}, virtplane.Errorf(virtplane.ErrNotFound, "directory user with no name")
	}
	c, done, err := d.conn(ctx)
	if err != nil {
		return DirectoryUser{}, err
	}
	defer done()
	e, err := d.find(c, name)
	if err != nil {
		return DirectoryUser{}, err
	}
	gs, err := d.groups(c, name, e.DN)
	if err != nil {
		return DirectoryUser{}, err
	}
	return DirectoryUser{Name: name, DN: e.DN, Groups: gs}, nil
}

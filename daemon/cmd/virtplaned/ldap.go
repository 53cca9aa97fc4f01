package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/auth"
)

// LDAPConfig is the "ldap" section of the configuration file: directory
// users (OpenLDAP, FreeIPA) sign in with their passwords.
//
//	"ldap": {"url": "ldaps://ipa.example.com", "ca_file": "/etc/ipa/ca.crt",
//	  "bind_dn": "uid=virtplane,cn=sysaccounts,cn=etc,dc=example,dc=com", "bind_password_file": "/etc/virtplane/ldap.pw",
//	  "user_base": "cn=users,cn=accounts,dc=example,dc=com", "group_base": "cn=groups,cn=accounts,dc=example,dc=com",
//	  "admin_groups": ["admins"], "user_groups": ["customers"], "sync": "1m"}
type LDAPConfig struct {
	URL              string   `json:"url"`
	CAFile           string   `json:"ca_file"`
	BindDN           string   `json:"bind_dn"`
	BindPasswordFile string   `json:"bind_password_file"`
	UserBase         string   `json:"user_base"`
	UserAttr         string   `json:"user_attr"`
	GroupBase        string   `json:"group_base"`
	AdminGroups      []string `json:"admin_groups"`
	UserGroups       []string `json:"user_groups"`
	Sync             string   `json:"sync"`
}

// applyLDAP sets the daemon's directory from the configuration's section.
func applyLDAP(dcfg *daemon.Config, c *LDAPConfig) error {
	if c == nil {
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "ldap ca_file: %v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "ldap ca_file %s holds no PEM certificate", c.CAFile)
		}
	}
	var password string
	if c.BindPasswordFile != "" {
		b, err := os.ReadFile(c.BindPasswordFile)
		if err != nil {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "ldap bind_password_file: %v", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	dir, err := auth.NewLDAPDirectory(auth.LDAPConfig{URL: c.URL, TLS: tc, BindDN: c.BindDN, BindPassword: password,
		UserBase: c.UserBase, UserAttr: c.UserAttr, GroupBase: c.GroupBase})
	if err != nil {
		return err
	}
	if c.Sync != "" {
		d, err := time.ParseDuration(c.Sync)
		if err != nil || d <= 0 {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "ldap sync %q is not a positive duration", c.Sync)
		}
		dcfg.DirectorySync = d
	}
	dcfg.Directory = dir
	dcfg.DirectoryRoles = auth.LDAPRoles{AdminGroups: c.AdminGroups, UserGroups: c.UserGroups}
	return nil
}

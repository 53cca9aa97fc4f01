package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/auth"
)

func TestLDAPConfigSection(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("s3cret\n"), 0o600))
	ok := LDAPConfig{URL: "ldaps://ipa.example.test", BindDN: "uid=svc", BindPasswordFile: pw,
		UserBase: "cn=users", GroupBase: "cn=groups", AdminGroups: []string{"admins"}, Sync: "30s"}
	var d daemon.Config
	require.NoError(t, applyLDAP(&d, &ok))
	assert.IsType(t, &auth.LDAPDirectory{}, d.Directory)
	assert.Equal(t, []string{"admins"}, d.DirectoryRoles.AdminGroups)
	assert.Equal(t, 30*time.Second, d.DirectorySync)
	require.NoError(t, applyLDAP(&d, nil), "no section, no directory")

	for name, bad := range map[string]func(c *LDAPConfig){
		"plain url":     func(c *LDAPConfig) { c.URL = "http://ipa.example.test" },
		"no user base":  func(c *LDAPConfig) { c.UserBase = "" },
		"missing ca":    func(c *LDAPConfig) { c.CAFile = filepath.Join(dir, "nope.pem") },
		"ca not pem":    func(c *LDAPConfig) { c.CAFile = pw },
		"missing pw":    func(c *LDAPConfig) { c.BindPasswordFile = filepath.Join(dir, "nope") },
		"bad sync":      func(c *LDAPConfig) { c.Sync = "-1s" },
		"unparsed sync": func(c *LDAPConfig) { c.Sync = "often" },
	} {
		c := ok
		bad(&c)
		var d daemon.Config
		assert.ErrorIs(t, applyLDAP(&d, &c), virtplane.ErrInvalidArgument, name)
		assert.Nil(t, d.Directory, name)
	}
}

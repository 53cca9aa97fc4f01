package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/scripts"
)

// TestRunOverSSH runs the example against the loopback sshd of env-ssh.
func TestRunOverSSH(t *testing.T) {
	s := testenv.RequireSSH(t)
	var out strings.Builder
	secret := "s3cret-db-passw0rd"
	require.NoError(t, run(t.Context(), &out, Options{Addr: s.Addr, User: s.User, KeyFile: s.KeyFile, KnownHosts: s.KnownHosts, Secret: secret}))
	o := out.String()
	t.Log(o)
	assert.Contains(t, o, "target host1: succeeded, exit code 0")
	assert.Contains(t, o, "configuring billing for bob; rm -rf /tmp/nothing")
	assert.Contains(t, o, "password is "+scripts.Mask)
	assert.Contains(t, o, "the script received the real secret")
	assert.NotContains(t, o, secret)
}

package smoke

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/virtplane/virtplane/internal/testenv"
)

// TestSSHRunsScript runs a script on the loopback sshd with x/crypto/ssh,
// checking the host key against known_hosts, and reads its output and exit code.
func TestSSHRunsScript(t *testing.T) {
	env := testenv.RequireSSH(t)
	key, err := os.ReadFile(env.KeyFile)
	require.NoError(t, err)
	signer, err := ssh.ParsePrivateKey(key)
	require.NoError(t, err)
	hostKeys, err := knownhosts.New(env.KnownHosts)
	require.NoError(t, err)

	client, err := ssh.Dial("tcp", env.Addr, &ssh.ClientConfig{
		User:            env.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         10 * time.Second,
	})
	require.NoError(t, err)
	defer client.Close()

	sess, err := client.NewSession()
	require.NoError(t, err)
	defer sess.Close()
	var stdout bytes.Buffer
	sess.Stdout = &stdout
	sess.Stdin = strings.NewReader("echo \"sum=$((40+2))\"\nexit 7\n")
	err = sess.Run("sh -s")
	var exit *ssh.ExitError
	require.True(t, errors.As(err, &exit), "want an exit error, got %v", err)
	assert.Equal(t, 7, exit.ExitStatus())
	assert.Equal(t, "sum=42\n", stdout.String())

	// A host key that is not in known_hosts is refused.
	_, err = ssh.Dial("tcp", env.Addr, &ssh.ClientConfig{
		User: env.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(string, net.Addr, ssh.PublicKey) error {
			return errors.New("unknown host key")
		},
		Timeout: 10 * time.Second,
	})
	assert.ErrorContains(t, err, "unknown host key")
}

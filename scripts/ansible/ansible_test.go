package ansible_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/ansible"
)

const playbook = `- hosts: all
  gather_facts: false
  tasks:
    - name: write the greeting, passed as argv
      command:
        argv: [sh, -c, 'printf "%s" "$1" > "$2"', sh, "{{ GREETING }}", "{{ OUT }}"]
    - name: show the token
      debug:
        msg: "token={{ TOKEN }}"
`

// TestPlaybookAgainstLoopbackSSHD runs one real play on the project's sshd
// and, in parallel, on a node that does not answer.
func TestPlaybookAgainstLoopbackSSHD(t *testing.T) {
	env := testenv.RequireSSH(t)
	r, err := ansible.New(ansible.Config{User: env.User, PrivateKeyFile: env.KeyFile, KnownHostsFile: env.KnownHosts})
	require.NoError(t, err)
	var logs bytes.Buffer
	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: r}, scripts.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)

	dir := t.TempDir()
	out, pwned := filepath.Join(dir, "greeting"), filepath.Join(dir, "pwned")
	greeting := fmt.Sprintf(`{{ lookup('pipe', 'touch %s') }} '; touch %s; '`, pwned, pwned)
	token := "tok-" + fmt.Sprint(time.Now().UnixNano())
	s := scripts.Script{Name: "greet", Owner: "ops", Visibility: scripts.Private, Kind: scripts.Ansible, Body: playbook,
		Params: []scripts.Param{{Name: "GREETING", Type: scripts.String}, {Name: "OUT", Type: scripts.String}}}
	res, err := ex.Run(t.Context(), scripts.RunRequest{
		Script: s, User: "ops", Timeout: 2 * time.Minute,
		Args:    map[string]string{"GREETING": greeting, "OUT": out},
		Globals: []scripts.Variable{{Name: "TOKEN", Value: token, Scope: scripts.Global, Hidden: true}},
		Targets: []scripts.Target{{Name: "node1", Address: env.Addr}, {Name: "gone", Address: "127.0.0.1:1"}},
	})
	require.NoError(t, err)
	require.Len(t, res.Targets, 2)
	node, gone := res.Targets[0], res.Targets[1]
	assert.Equal(t, scripts.Succeeded, node.Status, "stdout:\n%s\nstderr:\n%s", node.Stdout, node.Stderr)
	assert.Contains(t, node.Stdout, "token="+scripts.Mask)
	assert.NotContains(t, fmt.Sprintf("%+v", res)+logs.String(), token)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, greeting, string(got), "the value arrived as text, never templated")
	assert.NoFileExists(t, pwned)
	assert.Equal(t, scripts.Failed, gone.Status)
	assert.Equal(t, 4, gone.ExitCode, "ansible reports an unreachable node with exit 4")
}

func TestInventory(t *testing.T) {
	r, err := ansible.New(ansible.Config{User: "root", PrivateKeyFile: "/k/id", KnownHostsFile: "/k/known hosts"})
	require.NoError(t, err)
	inv, err := r.Inventory(scripts.Target{Name: "n1", Address: "10.0.0.5:2222", User: "admin"})
	require.NoError(t, err)
	var doc map[string]map[string]map[string]map[string]any
	require.NoError(t, json.Unmarshal(inv, &doc))
	h := doc["all"]["hosts"]["n1"]
	assert.Equal(t, "10.0.0.5", h["ansible_host"])
	assert.EqualValues(t, 2222, h["ansible_port"])
	assert.Equal(t, "admin", h["ansible_user"])
	assert.Equal(t, "-o StrictHostKeyChecking=yes -o UserKnownHostsFile='/k/known hosts'", h["ansible_ssh_common_args"])

	for _, bad := range []scripts.Target{{Name: "n1", Address: "{{ lookup('pipe','id') }}:22"}, {Name: "bad name", Address: "h:22"}} {
		_, err := r.Inventory(bad)
		require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	}
	_, err = ansible.New(ansible.Config{User: "root"})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = r.Run(t.Context(), scripts.Job{Target: scripts.Target{Name: "n1", Address: "h:22"}, Script: scripts.Rendered{Kind: scripts.Shell}})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

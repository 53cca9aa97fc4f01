package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/sshnode"
)

// The agent answers in JSON on stdout, errors included, and fails its
// exit for them. (Changing ports runs in netporttest over SSH, see
// daemon/sshnode; here only what touches no network.)
func TestPortCommandAnswersInJSON(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args  []string
		in    string
		class string
	}{
		{[]string{"list", "--state-dir", dir}, "{}", ""},
		{[]string{"list", "--state-dir", dir}, "", ""},
		{[]string{"reboot", "--state-dir", dir}, "{}", "invalid argument"},
		{[]string{"list", "--state-dir", "relative"}, "{}", "invalid argument"},
		{[]string{"list", "--state-dir", dir, "--netns", "vpt-no-such-ns"}, "{}", "unavailable"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			cmd := portCommand(strings.NewReader(tc.in), &out)
			cmd.SetArgs(tc.args)
			err := cmd.ExecuteContext(t.Context())
			var resp sshnode.PortResponse
			require.NoError(t, json.Unmarshal(out.Bytes(), &resp), out.String())
			if tc.class == "" {
				require.NoError(t, err)
				assert.Nil(t, resp.Error)
				assert.Empty(t, resp.Ports)
				return
			}
			require.Error(t, err)
			require.NotNil(t, resp.Error)
			assert.Equal(t, tc.class, resp.Error.Class)
		})
	}
}

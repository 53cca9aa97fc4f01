package builtin_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/builtin"
	"github.com/virtplane/virtplane/scripts/fake"
)

func TestScriptsAreValidShell(t *testing.T) {
	all, err := builtin.Scripts("operator")
	require.NoError(t, err)
	require.Len(t, all, 2)
	for _, s := range all {
		require.NoError(t, s.Validate())
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(s.Body)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: %s", s.Name, out)
	}
	_, err = builtin.Script("nope", "operator")
	require.ErrorIs(t, err, virtplane.ErrNotFound)
}

// TestBIRDRouteReflectorConfig runs the real installer with INSTALL=false:
// it writes bird.conf for the given neighbours, which the script itself
// checks with `bird -p` when BIRD is installed, as it is here.
func TestBIRDRouteReflectorConfig(t *testing.T) {
	s, err := builtin.Script(builtin.BIRDRouteReflector, "operator")
	require.NoError(t, err)
	conf := filepath.Join(t.TempDir(), "bird", "bird.conf")
	r, err := scripts.Render(s, scripts.RenderInput{Args: map[string]string{
		"ASN": "65010", "ROUTER_ID": "10.255.0.1", "CLIENTS": "10.0.0.2, 10.0.0.3 fd00::2",
		"BIRD_CONF": conf, "INSTALL": "false",
	}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "bash", "--noprofile", "--norc", "-s")
	cmd.Stdin = strings.NewReader(r.Text())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "with 3 client(s)")
	got, err := os.ReadFile(conf)
	require.NoError(t, err)
	for _, want := range []string{"router id 10.255.0.1;", "local as 65010;", "rr client;", "rr cluster id 10.255.0.1;",
		"neighbor 10.0.0.2 as 65010;", "neighbor 10.0.0.3 as 65010;", "neighbor fd00::2 as 65010;", "protocol bgp client3 from rr_client"} {
		assert.Contains(t, string(got), want)
	}
	if _, err := exec.LookPath("bird"); err == nil {
		check, err := exec.Command("bird", "-p", "-c", conf).CombinedOutput()
		require.NoError(t, err, "bird rejects the configuration: %s", check)
	}

	for _, bad := range []map[string]string{
		{"ASN": "65010", "ROUTER_ID": "10.255.0.1", "CLIENTS": "10.0.0.2; rm -rf /"},
		{"ASN": "0", "ROUTER_ID": "10.255.0.1", "CLIENTS": "10.0.0.2"},
		{"ASN": "65010", "ROUTER_ID": "300.1.1.1", "CLIENTS": "10.0.0.2"},
	} {
		_, err := scripts.Render(s, scripts.RenderInput{Args: bad})
		require.ErrorIs(t, err, virtplane.ErrInvalidArgument, "%v", bad)
	}
}

func TestDBaaSGeneratesHiddenPasswordAndMailsIt(t *testing.T) {
	s, err := builtin.Script(builtin.DBaaS, "operator")
	require.NoError(t, err)
	r := fake.New()
	// The fake stands in for the VM: it reports what the script would print.
	d := &captured{}
	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: r}, scripts.WithDeliverer(d))
	require.NoError(t, err)
	r.SetHandler("db1", func(_ context.Context, job scripts.Job, stdout, _ io.Writer) (int, error) {
		for _, v := range job.Script.Values {
			if v.Name == "DB_PASSWORD" {
				_, _ = stdout.Write([]byte("password set to " + v.Value + "\n"))
			}
		}
		return 0, nil
	})
	res, err := ex.Run(t.Context(), scripts.RunRequest{Script: s, User: "customer",
		Args:        map[string]string{"DB_NAME": "shop", "DB_USER": "shop_owner"},
		Targets:     []scripts.Target{{Name: "db1", Tags: []string{"debian"}}},
		NotifyEmail: "customer@example.test"})
	require.NoError(t, err)
	require.True(t, res.Succeeded())
	assert.Equal(t, "password set to "+scripts.Mask+"\n", res.Targets[0].Stdout)
	require.Len(t, d.got, 1)
	assert.Contains(t, d.got[0].Body, "database: shop")
	assert.Contains(t, d.got[0].Body, "user:     shop_owner")
	assert.Regexp(t, `password: [A-Za-z0-9]{24}\n`, d.got[0].Body)

	_, err = scripts.Render(s, scripts.RenderInput{Args: map[string]string{"DB_NAME": "x'; DROP DATABASE y; --", "DB_USER": "u"}})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

type captured struct{ got []scripts.Delivery }

func (c *captured) Deliver(_ context.Context, d scripts.Delivery) error {
	c.got = append(c.got, d)
	return nil
}

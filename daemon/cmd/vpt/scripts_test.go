package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGoldenScripts(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.must("cluster", "create", "--name", "fra1")
	c.must("node", "add", "--cluster", "fra1", "--name", "n1", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	dir := t.TempDir()
	c.ids[dir] = "/TMP"
	body := filepath.Join(dir, "hello.sh")
	require.NoError(t, os.WriteFile(body, []byte("printf 'hello %s\\n' \"$WHO\"\n"), 0o644))
	c.record("script", "create", "--name", "hello", "--file", body, "--visibility", "everyone",
		"--param", "WHO:string,default=world,description=whom to greet", "--param", "COUNT:int,min=1,max=5", "--target-all-of", "web")
	c.record("script", "create", "--name", "hello", "--file", body)
	c.record("script", "create", "--name", "odd", "--file", body, "--param", "X:bogus")
	c.record("script", "create", "--name", "odd", "--file", body, "--param", "X,colour=blue")
	c.record("script", "create", "--name", "odd")
	c.record("script", "create", "--name", "odd", "--file", filepath.Join(dir, "none.sh"))
	params := filepath.Join(dir, "params.yaml")
	require.NoError(t, os.WriteFile(params, []byte("- name: KEY\n  type: password\n  required: true\n- name: SIZE\n  type: choice\n  choices: [s, m, l]\n  default: m\n"), 0o644))
	c.stdin = "# LICENCE-KEY-123\necho licensed\n"
	c.record("script", "create", "--name", "licensed", "--file", "-", "--hidden-body", "--visibility", "everyone", "--params-file", params)
	c.record("script", "create", "--name", "both", "--file", body, "--params-file", params, "--param", "X")
	c.record("script", "get", "hello", "-o", "yaml")
	c.record("script", "update", "hello", "--description", "says hello", "--target-all-of", "", "--param", "WHO:string,default=you")
	c.record("script", "update", "hello", "--param", "WHO", "--no-params")
	c.record("script", "update", "nothing", "--description", "x")
	c.record("script", "list")
	// A simulated node runs no commands: the run fails, and says so per target.
	c.record("script", "run", "hello", "--node", "n1", "--arg", "WHO=operators", "--run-timeout", "60s", "--wait")
	c.record("script", "run", "hello", "--node", "nothing")
	c.record("script", "run", "hello", "--node", "n1", "--arg", "WHO")
	c.record("script", "run", "hello", "--node", "n1", "--run-timeout", "1.5s")
	c.stdin = "k3y\n"
	_, out, _ := c.vpt("script", "run", "licensed", "--node", "n1", "--arg-stdin", "KEY", "--arg", "SIZE=l", "-o", "json")
	run := regexp.MustCompile(`"id": "([0-9a-f]{24})"`).FindStringSubmatch(out)
	require.NotNil(t, run, out)
	c.vpt("task", "wait", run[1])
	c.record("script", "runs")
	c.record("script", "run-get", run[1])
	c.record("script", "run-get", run[1], "-o", "json")
	c.record("script", "run-get", "no-such-run")
	c.record("script", "runs", "--limit", "0")
	// What another user sees of a hidden body.
	c.stdin = "carol-password\n"
	c.must("user", "create", "--name", "carol", "--password-stdin")
	c.stdin = "carol-password\n"
	c.must("login", c.url, "--user", "carol", "--password-stdin", "--name", "carol")
	c.record("script", "get", "licensed")
	c.record("script", "delete", "licensed")
	c.must("context", "use", "test")
	c.record("script", "delete", "hello")
	c.record("script", "get", "hello")
	c.golden("script")
	require.NotContains(t, c.transcript.String(), "LICENCE-KEY", "the hidden body reached an output")
	require.NotContains(t, c.transcript.String(), "k3y", "a value from stdin reached an output")
}

func TestGoldenScriptVariables(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.record("script", "var", "create", "--name", "SITE", "--value", "fra", "--scope", "global")
	c.stdin = "s3cret-value\n"
	c.record("script", "var", "create", "--name", "API_TOKEN", "--value-file", "-", "--hidden")
	c.record("script", "var", "create", "--name", "PATH", "--value", "/tmp")
	c.record("script", "var", "create", "--name", "EMPTY")
	c.record("script", "var", "create", "--name", "TWO", "--value", "x", "--value-file", "-")
	c.record("script", "var", "list")
	c.record("script", "var", "get", "API_TOKEN", "-o", "json")
	c.record("script", "var", "update", "SITE", "--value", "ber")
	c.stdin = "n3w-s3cret\n"
	c.record("script", "var", "update", "API_TOKEN", "--value-file", "-")
	c.record("script", "var", "update", "SITE", "--value", "visible", "--hidden")
	c.record("script", "var", "update", "SITE")
	c.record("script", "var", "list", "-o", "yaml")
	c.record("script", "var", "delete", "SITE")
	c.record("script", "var", "get", "SITE")
	c.golden("script-var")
	require.NotContains(t, c.transcript.String(), "s3cret", "a hidden value reached an output")
}

package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// cli is a daemon on simulated nodes and a vpt config of its own.
type cli struct {
	t      *testing.T
	srv    *daemon.Server
	url    string
	config string
	stdin  string
	// transcript is what the commands printed, normalized.
	transcript strings.Builder
	ids        map[string]string
}

func newCLI(t *testing.T) *cli { return newCLIWith(t, daemon.Config{}) }

// newCLIWith is newCLI on a daemon of cfg (its store, instance and data
// directory the test's own).
func newCLIWith(t *testing.T, cfg daemon.Config) *cli {
	cfg.Store, cfg.Instance, cfg.DataDir = dbtest.SQLite(t), "vpt-test", t.TempDir()
	srv, err := daemon.New(cfg)
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); stop(); <-done; _ = srv.Close() })
	_, err = srv.Bootstrap(t.Context(), "admin-password")
	require.NoError(t, err)
	c := &cli{t: t, srv: srv, url: hs.URL, config: filepath.Join(t.TempDir(), "vpt", "config.json"), ids: map[string]string{}}
	c.ids[hs.URL] = "http://DAEMON"
	c.ids[strings.TrimPrefix(hs.URL, "http://")] = "DAEMON"
	return c
}

// vpt runs the CLI in-process and returns its exit code, stdout and stderr.
func (c *cli) vpt(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(c.t.Context(), time.Minute)
	defer cancel()
	e := env{stdin: strings.NewReader(c.stdin), stdout: &out, stderr: &errOut, getenv: func(k string) string {
		if k == "VPT_CONFIG" {
			return c.config
		}
		return ""
	}}
	if args[0] != "__complete" { // its last argument is the word to complete
		// before a "--": what follows it is not vpt's
		at := slices.Index(args, "--")
		if at < 0 {
			at = len(args)
		}
		args = slices.Concat(args[:at], []string{"--poll", "10ms"}, args[at:])
	}
	code := run(ctx, args, e)
	c.stdin = ""
	return code, out.String(), errOut.String()
}

// record runs a command and adds it, its output and exit code (and its
// stderr when it failed) to the transcript.
func (c *cli) record(args ...string) (int, string) {
	c.t.Helper()
	code, out, errOut := c.vpt(args...)
	fmt.Fprintf(&c.transcript, "$ vpt %s\n%s", strings.Join(args, " "), out)
	if code != 0 {
		// The progress lines of --wait depend on when the task was read.
		fmt.Fprintf(&c.transcript, "stderr: %s", progressLines.ReplaceAllString(errOut, ""))
	}
	fmt.Fprintf(&c.transcript, "[exit %d]\n\n", code)
	return code, out
}

// must runs a command that has to succeed and returns its stdout.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	code, out, errOut := c.vpt(args...)
	require.Equal(c.t, 0, code, "vpt %v: %s%s", args, out, errOut)
	return out
}

var (
	idPattern     = regexp.MustCompile(`\b[0-9a-f]{24}\b`)
	timePattern   = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\b`)
	progressLines = regexp.MustCompile(`(?m)^\S+ \[[#.]+\].*\n`)
	// secrets of tokens
	tokenPattern = regexp.MustCompile(`vpt_[A-Za-z0-9_-]+`)
	// the per-VM script keys (public, but new for every VM)
	sshKeyPattern = regexp.MustCompile(`ssh-ed25519 [A-Za-z0-9+/=]+`)
	// console tickets and webhook secrets
	ticketPattern  = regexp.MustCompile(`vptc_[A-Za-z0-9_-]+`)
	whsecPattern   = regexp.MustCompile(`whsec_[0-9a-f]+`)
	macPattern     = regexp.MustCompile(`\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b`)
	durationMSJSON = regexp.MustCompile(`"duration_ms": \d+`)
)

// normalize replaces what changes from run to run (IDs, times, token
// secrets, the daemon's address) by stable placeholders of the same width,
// so tables keep their alignment.
func (c *cli) normalize(s string) string {
	for real, fake := range c.ids {
		s = strings.ReplaceAll(s, real, fake)
	}
	s = idPattern.ReplaceAllStringFunc(s, func(id string) string {
		if _, ok := c.ids[id]; !ok {
			n := fmt.Sprintf("<id%02d", len(c.ids)-1)
			c.ids[id] = n + strings.Repeat("_", 23-len(n)) + ">"
		}
		return c.ids[id]
	})
	s = timePattern.ReplaceAllStringFunc(s, func(ts string) string {
		if strings.Contains(ts, ".") { // JSON times: their width varies anyway
			return "<time>"
		}
		return "<time" + strings.Repeat("_", len(ts)-6) + ">" // tables: keep the width
	})
	s = tokenPattern.ReplaceAllString(s, "vpt_<secret>")
	s = sshKeyPattern.ReplaceAllString(s, "ssh-ed25519 <key>")
	s = ticketPattern.ReplaceAllString(s, "vptc_<ticket>")
	s = whsecPattern.ReplaceAllString(s, "whsec_<secret>")
	s = macPattern.ReplaceAllString(s, "<mac____________>")
	s = durationMSJSON.ReplaceAllString(s, `"duration_ms": <ms>`)
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return strings.Join(lines, "\n")
}

// golden compares the transcript with testdata/NAME.golden (-update rewrites it).
func (c *cli) golden(name string) {
	c.t.Helper()
	got := c.normalize(c.transcript.String())
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(c.t, os.MkdirAll("testdata", 0o755))
		require.NoError(c.t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(c.t, err, "run go test -update to create %s", path)
	assert.Equal(c.t, string(want), got, "transcript differs from %s (go test -update rewrites it)", path)
}

// login signs the CLI in as the admin.
func (c *cli) login() {
	c.t.Helper()
	c.stdin = "admin-password\n"
	c.must("login", c.url, "--user", "admin", "--password-stdin", "--name", "test")
}

// infra makes a cluster with two simulated nodes, a pool and an image.
func (c *cli) infra() {
	c.t.Helper()
	c.must("cluster", "create", "--name", "fra1", "--cpu-overcommit", "2")
	c.must("node", "add", "--cluster", "fra1", "--name", "n1", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	c.must("node", "add", "--cluster", "fra1", "--name", "n2", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	c.must("pool", "create", "--name", "public", "--cluster", "fra1", "--block", "192.0.2.0/28,192.0.2.1")
	c.must("image", "create", "--name", "debian-12", "--source", "/var/lib/virtplane/images/debian-12.qcow2")
}

func TestGoldenLoginAndContexts(t *testing.T) {
	c := newCLI(t)
	c.record("cluster", "list")
	c.stdin = "wrong-password\n"
	c.record("login", c.url, "--user", "admin", "--password-stdin")
	c.stdin = "admin-password\n"
	c.record("login", c.url, "--user", "admin", "--password-stdin", "--name", "first")
	tok := c.must("token", "create", "--name", "second", "-o", "json")
	secret := regexp.MustCompile(`"token": "([^"]+)"`).FindStringSubmatch(tok)
	require.NotNil(t, secret, tok)
	c.record("login", c.url, "--token", secret[1], "--name", "second")
	c.record("context", "list")
	c.record("context", "use", "first")
	c.record("context", "current")
	c.record("whoami")
	c.record("context", "use", "nowhere")
	c.record("--context", "nowhere", "cluster", "list")
	c.record("context", "delete", "second")
	c.record("context", "list", "-o", "yaml")
	c.golden("login")
	fi, err := os.Stat(c.config)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the config holds tokens")
}

func TestGoldenClusters(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.record("cluster", "create", "--name", "fra1", "--cpu-overcommit", "4", "--strategy", "sequential")
	c.record("cluster", "create", "--name", "fra1")
	c.record("cluster", "create", "--name", "Bad_Name")
	c.record("cluster", "create")
	c.record("cluster", "update", "fra1", "--ram-overcommit", "1.5")
	c.record("cluster", "get", "fra1", "-o", "yaml")
	c.record("cluster", "list", "-o", "json")
	c.record("cluster", "vxlan-sync", "fra1")
	c.record("cluster", "delete", "fra1")
	c.record("cluster", "get", "fra1")
	c.golden("cluster")
}

func TestGoldenNodes(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.must("cluster", "create", "--name", "fra1")
	c.record("node", "add", "--cluster", "fra1", "--name", "n1", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	c.record("node", "add", "--cluster", "nowhere", "--name", "n2", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	c.record("node", "add", "--cluster", "fra1", "--name", "n2", "--address", "sim", "--cores", "8")
	c.record("node", "maintenance", "n1")
	c.record("node", "list", "--cluster", "fra1")
	c.record("node", "maintenance", "n1", "--off")
	c.record("node", "vtep", "n1", "198.51.100.7")
	c.record("node", "get", "n1", "-o", "json")
	c.record("cluster", "delete", "fra1")
	c.record("node", "remove", "n1")
	c.record("node", "list")
	c.golden("node")
}

func TestGoldenPoolsAndImages(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.must("cluster", "create", "--name", "fra1")
	c.must("node", "add", "--cluster", "fra1", "--name", "n1", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	c.record("pool", "create", "--name", "public", "--cluster", "fra1", "--block", "192.0.2.0/28,192.0.2.1")
	c.record("pool", "add-block", "public", "198.51.100.10-198.51.100.20")
	c.record("pool", "add-block", "public", "not-a-range")
	c.record("pool", "remove-block", "public", "198.51.100.10-198.51.100.20")
	c.record("pool", "list")
	c.record("image", "create", "--name", "debian-12", "--source", "relative/path.qcow2")
	c.record("image", "create", "--name", "debian-12", "--source", "/var/lib/virtplane/images/debian-12.qcow2", "--cluster", "fra1", "--wait")
	img := filepath.Join(t.TempDir(), "tiny.raw")
	require.NoError(t, os.WriteFile(img, make([]byte, 1<<20), 0o644))
	c.ids[filepath.Dir(img)] = "/TMP"
	c.record("image", "create", "--name", "tiny", "--source", img, "--format", "raw", "--cluster", "fra1", "--wait")
	c.record("image", "list")
	c.record("image", "import", "debian-12")
	c.record("image", "import", "tiny", "--node", "n1", "--wait")
	c.record("image", "delete", "tiny", "--wait")
	c.record("pool", "delete", "public")
	c.record("pool", "get", "public")
	c.golden("pool-image")
}

func TestGoldenVMs(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.infra()
	c.record("vm", "create", "--name", "web1", "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
		"--cpus", "2", "--memory-mib", "2048", "--disk-gib", "20", "--idempotency-key", "order-1", "--wait")
	c.record("vm", "create", "--name", "web1", "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
		"--cpus", "2", "--memory-mib", "2048", "--disk-gib", "20", "--idempotency-key", "order-1", "-o", "json")
	c.record("vm", "create", "--name", "huge", "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
		"--cpus", "100", "--memory-mib", "2048", "--disk-gib", "20", "--wait")
	c.record("vm", "create", "--name", "web2", "--cluster", "fra1")
	c.record("vm", "list")
	c.record("vm", "resize", "web1", "--cpus", "4", "--disk-gib", "30", "--wait")
	c.record("vm", "resize", "web1", "--disk-gib", "10", "--wait")
	c.record("vm", "limits", "web1", "--net-mbit", "100", "--wait")
	c.record("vm", "stop", "web1", "--wait")
	c.record("vm", "start", "web1", "--wait")
	c.record("vm", "reboot", "web1", "--wait")
	c.record("vm", "snapshot", "create", "web1", "before-upgrade", "--wait")
	c.record("vm", "snapshot", "list", "web1")
	c.record("vm", "snapshot", "delete", "web1", "before-upgrade", "--wait")
	c.record("vm", "migrate", "web1", "--node", "n2", "--wait")
	c.record("vm", "get", "web1", "-o", "yaml")
	c.record("vm", "console", "web1")
	c.record("vm", "delete", "web1", "--wait")
	c.record("vm", "get", "web1")
	c.golden("vm")
}

func TestGoldenTasks(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.infra()
	out := c.must("vm", "create", "--name", "web1", "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
		"--cpus", "1", "--memory-mib", "512", "--disk-gib", "5", "-o", "json")
	task := regexp.MustCompile(`"id": "([0-9a-f]{24})"`).FindStringSubmatch(out)
	require.NotNil(t, task, out)
	c.record("task", "wait", task[1])
	c.record("task", "get", task[1], "-o", "yaml")
	c.record("task", "list", "--state", "succeeded")
	c.record("task", "log", task[1], "-o", "json")
	c.record("task", "cancel", task[1])
	c.record("task", "get", "no-such-task")
	c.golden("task")
}

func TestGoldenUsersAndTokens(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.stdin = "carol-password\n"
	c.record("user", "create", "--name", "carol", "--password-stdin")
	c.record("user", "create", "--name", "dave")
	c.record("user", "list")
	c.record("user", "get", "carol", "-o", "json")
	c.record("token", "create", "--name", "ci", "--ttl", "24h")
	c.record("token", "list")
	c.record("token", "delete", "ci")
	c.record("token", "list")
	c.stdin = "carol-password\n"
	c.record("login", c.url, "--user", "carol", "--password-stdin", "--name", "carol")
	c.record("user", "list")
	c.record("node", "list")
	c.record("--context", "test", "user", "delete", "carol")
	c.record("--context", "test", "user", "get", "carol")
	c.golden("user-token")
}

func TestGoldenEvents(t *testing.T) {
	c := newCLI(t)
	c.login()
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	// The daemon's own watchers (notifications) subscribe too.
	baseline := c.srv.Events.Subscribers()
	go func() {
		code, out, errOut := c.vpt("events", "--type", "cluster", "--count", "2")
		done <- result{code, out, errOut}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.srv.Events.Subscribers() <= baseline {
		require.True(t, time.Now().Before(deadline), "vpt events did not subscribe within 10s")
		time.Sleep(5 * time.Millisecond)
	}
	c.must("cluster", "create", "--name", "fra1")
	c.must("node", "add", "--cluster", "fra1", "--name", "n1", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	c.must("cluster", "update", "fra1", "--max-vms", "10")
	select {
	case r := <-done:
		fmt.Fprintf(&c.transcript, "$ vpt events --type cluster --count 2\n%s[exit %d]\n", r.out, r.code)
	case <-time.After(30 * time.Second):
		t.Fatal("vpt events did not print 2 cluster events within 30s")
	}
	c.golden("events")
}

func TestExitCodesAndUsage(t *testing.T) {
	c := newCLI(t)
	c.record("frobnicate")
	c.record("vm", "get")
	c.record("vm", "list", "-o", "xml")
	c.record("vm", "list", "--no-such-flag")
	c.record("--url", c.url, "--token", "vpt_wrong", "vm", "list")
	c.record("--url", "http://127.0.0.1:1", "--token", "t", "vm", "list")
	c.login()
	c.record("vm", "get", "nothing")
	c.golden("errors")
}

func TestCompletion(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.infra()
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		out := c.must("completion", sh)
		assert.Contains(t, out, "vpt", sh)
	}
	// Dynamic completion of names, as the shells ask for it.
	_, out, _ := c.vpt("__complete", "cluster", "get", "")
	assert.Contains(t, out, "fra1")
	_, out, _ = c.vpt("__complete", "vm", "create", "--image", "")
	assert.Contains(t, out, "debian-12")
	_, out, _ = c.vpt("__complete", "--context", "")
	assert.Contains(t, out, "test")
	_, out, _ = c.vpt("__complete", "-o", "")
	assert.Contains(t, out, "yaml")
	// The names of the newer groups, in arguments and flags.
	c.must("template", "create", "--name", "small")
	c.must("script", "var", "create", "--name", "SITE", "--value", "fra")
	_, out, _ = c.vpt("__complete", "template", "get", "")
	assert.Contains(t, out, "small")
	_, out, _ = c.vpt("__complete", "cluster", "template", "fra1", "")
	assert.Contains(t, out, "small")
	_, out, _ = c.vpt("__complete", "cluster", "rescue", "fra1", "--iso", "")
	assert.Contains(t, out, "debian-12")
	_, out, _ = c.vpt("__complete", "script", "run", "")
	assert.Contains(t, out, "dbaas")
	_, out, _ = c.vpt("__complete", "script", "run", "dbaas", "--node", "")
	assert.Contains(t, out, "n1")
	_, out, _ = c.vpt("__complete", "script", "var", "get", "")
	assert.Contains(t, out, "SITE")
	_, out, _ = c.vpt("__complete", "node", "tags", "")
	assert.Contains(t, out, "n2")
	_, out, _ = c.vpt("__complete", "notify", "subscription", "create", "--channel", "")
	assert.Contains(t, out, "webhook")
}

func TestGoldenStoragesAndBackups(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.must("cluster", "create", "--name", "fra1", "--cpu-overcommit", "2",
		"--storage", "local:file:/var/lib/virtplane/local,default=true", "--storage", "bak:file:/var/lib/virtplane/backups,tags=backup")
	c.must("node", "add", "--cluster", "fra1", "--name", "n1", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	c.must("pool", "create", "--name", "public", "--cluster", "fra1", "--block", "192.0.2.0/28,192.0.2.1")
	c.must("image", "create", "--name", "debian-12", "--source", "/var/lib/virtplane/images/debian-12.qcow2")
	c.must("vm", "create", "--name", "web1", "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
		"--cpus", "1", "--memory-mib", "1024", "--disk-gib", "10", "--wait")
	c.record("cluster", "get", "fra1", "-o", "json")
	c.record("vm", "backup", "create", "web1", "bak", "--wait")
	c.record("vm", "stop", "web1", "--wait")
	c.record("vm", "backup", "create", "web1", "bak", "--wait")
	c.record("vm", "backup", "list", "web1")
	c.record("vm", "move-disk", "web1", "local")
	c.record("vm", "image", "web1", "web1-template", "--wait")
	// Data disks: with the VM, added, grown and removed.
	c.record("vm", "create", "--name", "db1", "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
		"--cpus", "1", "--memory-mib", "1024", "--disk-gib", "10", "--data-disk", "20@bak", "--wait", "-o", "json")
	c.record("vm", "disk", "add", "db1", "5", "--storage-tag", "backup", "--wait")
	c.record("vm", "disk", "resize", "db1", "vdc", "8", "--wait")
	c.record("vm", "disk", "resize", "db1", "vdc", "6")
	c.record("vm", "disk", "remove", "db1", "vdb", "--wait")
	c.record("vm", "disk", "list", "db1")
	c.record("vm", "create", "--name", "db2", "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
		"--cpus", "1", "--memory-mib", "1024", "--disk-gib", "10", "--data-disk", "x@bak")
	c.golden("storages")
}

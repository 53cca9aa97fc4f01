package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGoldenQuotaEmailAudit(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.stdin = "carol-password\n"
	c.must("user", "create", "--name", "carol", "--password-stdin")
	c.record("user", "email", "carol", "carol@example.org")
	c.record("user", "email", "carol", "not an address")
	c.record("user", "quota", "get", "carol")
	c.record("user", "quota", "set", "carol", "--vms", "2", "--vcpus", "4")
	c.record("user", "quota", "patch", "carol", "--memory-mib", "4096", "-o", "json")
	c.record("user", "quota", "set", "carol", "--disk-gib", "100")
	c.record("user", "quota", "patch", "carol")
	c.record("user", "quota", "patch", "carol", "--vms", "-5")
	c.record("user", "quota", "set", "carol", "--vms", "two")
	c.record("user", "quota", "get", "nobody")
	c.stdin = "carol-password\n"
	c.must("login", c.url, "--user", "carol", "--password-stdin", "--name", "carol")
	c.record("user", "quota", "get", "carol")
	c.record("user", "quota", "set", "carol", "--vms", "100")
	c.record("cluster", "create", "--name", "mine")
	c.record("audit", "list")
	c.must("context", "use", "test")
	// The daemon writes an entry once its answer is out: wait for carol's last.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.must("audit", "list", "--actor", "carol", "-o", "json"), `"createCluster"`) {
		require.True(t, time.Now().Before(deadline), "carol's createCluster is not in the audit log after 10s")
		time.Sleep(10 * time.Millisecond)
	}
	c.record("audit", "list", "--actor", "carol")
	carol := regexp.MustCompile(`"id": "([0-9a-f]{24})"`).FindStringSubmatch(c.must("user", "get", "carol", "-o", "json"))
	require.NotNil(t, carol)
	c.record("audit", "list", "--target", carol[1], "--limit", "3")
	c.record("audit", "list", "--actor", "carol", "-o", "yaml")
	c.record("audit", "list", "--actor", "nobody")
	c.record("audit", "list", "--limit", "0")
	c.record("audit", "list", "--limit", "100")
	c.golden("quota-email-audit")
}

package main

import (
	"testing"
)

func TestGoldenVMActions(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.infra()
	c.must("vm", "create", "--name", "web1", "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
		"--cpus", "1", "--memory-mib", "1024", "--disk-gib", "10", "--wait")
	c.record("vm", "suspend", "web1", "--wait")
	c.record("vm", "resume", "web1", "--wait")
	c.record("vm", "reset", "web1", "--wait")
	c.record("vm", "shutdown", "web1", "--grace", "1.5s")
	c.record("vm", "shutdown", "web1", "--grace", "30s", "--force=false", "--wait")
	c.record("vm", "suspend", "web1", "--wait")
	c.record("vm", "snapshot", "create", "web1", "clean", "--wait")
	c.record("vm", "snapshot", "revert", "web1", "clean", "--wait")
	c.record("vm", "snapshot", "revert", "web1", "no-such-snapshot", "--wait")
	c.record("vm", "clone", "web1", "web2", "--idempotency-key", "clone-1", "--wait")
	c.record("vm", "clone", "nothing", "web3")
	c.record("vm", "tags", "web2", "db", "fra")
	c.record("vm", "tags", "web2", "Bad Tag")
	c.record("vm", "tags", "web2")
	c.record("vm", "tags", "web2", "--none", "-o", "json")
	c.record("vm", "start", "web1", "--wait")
	c.record("vm", "console", "web1", "--ticket")
	c.record("vm", "guest", "interfaces", "web1")
	c.record("vm", "guest", "exec", "web1", "--exec-timeout", "10s", "--", "echo", "-n", "hello")
	c.record("vm", "guest", "exec", "web1", "-o", "json", "--", "false")
	c.record("vm", "guest", "exec", "web1", "--", "false")
	c.record("vm", "guest", "exec", "web1", "--exec-timeout", "1ms", "--", "true")
	c.stdin = "s3cret-pass\n"
	c.record("vm", "guest", "set-password", "web1", "root", "--password-stdin")
	c.record("vm", "guest", "set-password", "web1", "root")
	c.golden("vm-actions")
}

package main

import "testing"

// TestGoldenPoolBlocksAndPortPolicy: blocks with exclusions and
// reservations, an admin's create naming a reserved address, and a VM's
// port policy through vpt, with the refusals of bad input.
func TestGoldenPoolBlocksAndPortPolicy(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.must("cluster", "create", "--name", "fra1")
	c.must("node", "add", "--cluster", "fra1", "--name", "n1", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	c.must("image", "create", "--name", "debian-12", "--source", "/var/lib/virtplane/images/debian-12.qcow2")
	c.record("pool", "create", "--name", "small", "--cluster", "fra1", "--block", "198.51.100.0/29,198.51.100.1,exclude=198.51.100.2-198.51.100.3,reserve=198.51.100.4")
	c.record("pool", "add-block", "small", "2001:db8::/126")
	c.record("pool", "add-block", "small", "203.0.113.0/30,gw=203.0.113.1,reserve=203.0.113.9")
	c.record("pool", "add-block", "small", "203.0.113.0/30,203.0.113.1,nope=1")
	c.record("pool", "add-block", "small", "198.51.100.4/30")
	c.record("pool", "get", "small", "-o", "json")
	vm := []string{"vm", "create", "--cluster", "fra1", "--image", "debian-12", "--pool", "small", "--cpus", "1", "--memory-mib", "512", "--disk-gib", "5"}
	c.record(append(vm, "--name", "next", "--wait")...)
	c.record(append(vm, "--name", "kept", "--address", "198.51.100.4", "--wait")...)
	c.record(append(vm, "--name", "excluded", "--address", "198.51.100.2")...)
	c.record(append(vm, "--name", "dual", "--dual-stack", "--wait")...)
	c.record(append(vm, "--name", "mail", "--block-out", "25/tcp", "--block-out", "465/tcp", "--block-in", "6000-6010/udp", "--net-in-mbit", "50", "--net-out-mbit", "10", "--wait")...)
	c.record("vm", "get", "mail", "-o", "yaml")
	c.record("vm", "limits", "mail", "--block-out", "25", "--wait")
	c.record("vm", "limits", "mail", "--max-connections", "100", "--wait")
	c.record("vm", "limits", "mail", "--block-out", "587/tcp", "--wait")
	c.golden("pool-port-policy")
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGoldenTemplates(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.must("cluster", "create", "--name", "fra1")
	c.record("template", "create", "--name", "small", "--machine", "q35", "--cpu-mode", "host-model", "--disk-bus", "virtio", "--nic-model", "virtio")
	c.record("template", "create", "--name", "small")
	c.record("template", "create", "--name", "odd", "--cpu-mode", "bogus")
	c.stdin = "<domain><memoryBacking><hugepages/></memoryBacking></domain>\n"
	c.record("template", "create", "--name", "huge", "--override-file", "-")
	dir := t.TempDir()
	c.ids[dir] = "/TMP"
	c.record("template", "create", "--name", "gone", "--override-file", filepath.Join(dir, "none.xml"))
	c.record("template", "update", "small", "--video", "none", "--cpu-mode", "custom", "--cpu-model", "Haswell")
	c.record("template", "list")
	c.record("template", "get", "small", "-o", "yaml")
	c.record("cluster", "template", "fra1", "small")
	c.record("cluster", "template", "fra1", "nothing")
	c.record("cluster", "template", "fra1")
	c.record("cluster", "template", "fra1", "small", "--none")
	c.record("template", "delete", "small")
	c.record("cluster", "template", "fra1", "--none")
	c.record("template", "delete", "small")
	c.record("template", "get", "small")
	c.golden("template")
}

func TestGoldenClusterOps(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.infra()
	c.record("cluster", "update", "fra1", "--strategy", "sequential", "--max-vms", "5")
	c.record("cluster", "update", "fra1", "--strategy", "bogus")
	for _, vm := range []string{"web1", "web2"} {
		c.must("vm", "create", "--name", vm, "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
			"--cpus", "2", "--memory-mib", "2048", "--disk-gib", "10", "--wait")
	}
	c.record("cluster", "rebalance", "fra1", "--plan")
	c.record("cluster", "rebalance", "fra1", "--plan", "--max-moves", "1", "-o", "json")
	c.record("cluster", "rebalance", "fra1", "--plan", "--wait")
	c.record("cluster", "rebalance", "fra1", "--threshold", "2")
	c.record("cluster", "rebalance", "fra1", "--threshold", "0.1", "--wait")
	c.record("cluster", "rebalance", "fra1", "--plan")
	c.record("cluster", "rescue", "fra1", "--kernel", "/srv/rescue/vmlinuz", "--initrd", "/srv/rescue/initrd.img", "--cmdline", "console=ttyS0")
	c.record("cluster", "rescue", "fra1", "--kernel", "relative/vmlinuz")
	c.record("cluster", "rescue", "fra1", "--iso", "debian-12")
	c.record("cluster", "rescue", "fra1", "--iso", "nothing")
	c.record("cluster", "rescue", "fra1")
	c.record("cluster", "rescue", "fra1", "--none", "--kernel", "/srv/rescue/vmlinuz")
	c.record("cluster", "rescue", "fra1", "--none", "-o", "json")
	// replace: the settings as get printed them, edited.
	got := c.must("cluster", "get", "fra1", "-o", "yaml")
	file := filepath.Join(t.TempDir(), "fra1.yaml")
	c.ids[filepath.Dir(file)] = "/TMP"
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(got, "max_vms: 5", "max_vms: 7", 1)), 0o644))
	c.record("cluster", "replace", "fra1", "--file", file)
	c.stdin = `{"name": "fra1", "virt_type": "kvm", "strategy": "even", "max_vms": 0, "colour": "blue"}`
	c.record("cluster", "replace", "fra1", "-f", "-")
	c.stdin = `{"name": "fra1", "virt_type": "lxd"}`
	c.record("cluster", "replace", "fra1", "-f", "-")
	c.record("cluster", "replace", "fra1")
	c.record("cluster", "get", "fra1", "-o", "json")
	c.golden("cluster-ops")
}

func TestGoldenNodeTagsAndStorage(t *testing.T) {
	c := newCLI(t)
	c.login()
	c.must("cluster", "create", "--name", "fra1", "--storage", "local:file:/var/lib/virtplane/local,default=true")
	c.must("node", "add", "--cluster", "fra1", "--name", "n1", "--address", "sim", "--cores", "8", "--memory-mib", "16384", "--disk-gib", "200")
	c.record("node", "tags", "n1", "ssd", "rack:a1")
	c.record("node", "tags", "n1", "-o", "yaml")
	c.record("node", "tags", "n1", "ssd", "--none")
	c.record("node", "tags", "n1", "--none")
	c.record("node", "tags", "nothing", "ssd")
	c.record("storage", "drivers")
	c.record("storage", "usage", "fra1")
	c.record("storage", "usage", "nowhere")
	c.golden("node-storage")
}

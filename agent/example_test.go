package agent_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/fake"
)

// Example serves a node (here a fake hypervisor) on a unix socket and
// drives it through a client, as a controller drives a node through its
// SSH connection to the node's socket.
func Example() {
	dir, _ := os.MkdirTemp("", "vpt-agent-example-")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")

	// On the node.
	srv, _ := agent.NewServer(agent.ServerConfig{Version: "1.0", Node: agent.Node{VMM: fake.New()}})
	l, err := agent.ListenUnix(sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	// On the controller.
	c, _ := agent.NewClient(agent.ClientConfig{Version: "1.0", Node: "n1", Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}})
	defer c.Close()
	ctx := context.Background()
	h, err := c.Hello(ctx)
	if err != nil {
		fmt.Println(err) // *agent.VersionError: upgrade the agent
		return
	}
	fmt.Println("agent", h.Version, "protocol", h.Protocol)
	d := c.VMM()
	_, _ = d.Create(ctx, vmm.Spec{Name: "web-1", VCPUs: 1, MemoryMiB: 512})
	_ = d.Start(ctx, "web-1")
	vm, _ := d.Get(ctx, "web-1")
	fmt.Println(vm.Name, vm.State)
	if _, ok := vmm.As[vmm.Migrator](d); ok {
		fmt.Println("the node's hypervisor migrates")
	}
	_, err = d.Get(ctx, "web-2")
	fmt.Println(err)
	// Output:
	// agent 1.0 protocol 1
	// web-1 running
	// the node's hypervisor migrates
	// node n1: vm "web-2": not found
}

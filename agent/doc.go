// Package agent is the node agent's remote procedure layer: a Server that
// serves one node's drivers (its hypervisor driver, storage pools, network
// ports, command executor, file uploads and facts) to a remote controller,
// and a Client whose VMM, Pool, Ports and Exec values are those drivers on
// the controller's side. The clients pass the same conformance suites as
// the drivers themselves (vmmtest, storagetest, porttest), so a controller
// drives a node through the agent exactly as it drives a local one.
//
// Transport. HTTP/1.1 over any stream: the server answers on the
// listeners given to Serve (ListenUnix: a 0600 socket in a 0700
// directory; never TCP), the client dials with ClientConfig.Dial. The
// controller reaches the socket through its SSH connection to the node
// (a direct-streamlocal channel, sshnode.Conn.DialUnix), so SSH
// authenticates both ends and nothing listens unauthenticated.
//
// Wire. A call is POST /v1/{object}/{method} with a JSON body, answered
// with JSON; an error is {class, message} and comes back as the same
// virtplane class (errors.Is holds across the wire for every class;
// storage.ExitError keeps its code and standard error). Machine events and
// migration progress stream as JSON lines; a command's standard input and
// output stream both ways with its outcome in a trailer; an upload is a PUT
// of the raw file. Every request carries the caller's protocol, version and
// remaining time: the agent refuses a mismatched caller (VersionError,
// wrapping ErrConflict, naming both versions, so the controller can upgrade
// the agent) and cancels the work when the time is up or the connection
// drops.
//
// Client. It connects on first use, keeps connections open, and dials
// anew after a connection dropped or the agent restarted; a read lost on
// the way is sent once more, a write never (it fails with ErrUnavailable).
// Calls without a deadline get CallTimeout. Optional capabilities are
// found with vmm.As and storage.As: the client implements every optional
// interface and reports the set the node's drivers really have, as the
// handshake (Hello) learned it.
//
// Pools. A node has the pools it was built with (Node.Pools) and those a
// controller opens by driver and settings (Client.OpenPool with a
// PoolSpec): the agent opens them with the opener registered for the
// driver (Node.PoolOpeners; "file" is always there, the binary that builds
// the agent registers lvm, ceph, san).
//
// Example, on the node:
//
//	l, err := agent.ListenUnix("/run/virtplane/agent.sock")
//	srv, err := agent.NewServer(agent.ServerConfig{Version: version, Node: agent.Node{
//		VMM: libvirtDriver, Ports: ports, Exec: storage.LocalExecutor{},
//		Pools:     map[string]storage.Pool{"local": filePool},
//		UploadDir: "/var/lib/virtplane/uploads",
//	}})
//	go srv.Serve(l)
//
// and on the controller:
//
//	c, err := agent.NewClient(agent.ClientConfig{Version: version, Node: "n1",
//		Dial: func(ctx context.Context) (net.Conn, error) { return ssh.DialUnix(ctx, "/run/virtplane/agent.sock") }})
//	if _, err := c.Hello(ctx); err != nil { // *agent.VersionError: upgrade the agent
//		return err
//	}
//	d := c.VMM()
//	_, err = d.Create(ctx, spec)
//	if m, ok := vmm.As[vmm.Migrator](d); ok { ... }
package agent

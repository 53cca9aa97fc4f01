// Package sshnode reaches a node on another machine over SSH, as Proxmox
// and VMmanager reach theirs: the daemon keeps one SSH connection per node
// (Conn, golang.org/x/crypto/ssh), re-made on the first use after it
// dropped, and everything it does on the node goes through it as channels:
//
//   - the node agent: Conn.DialUnix opens the agent's unix socket as a
//     direct-streamlocal channel (package agent's ClientConfig.Dial), so
//     nothing on the node listens on the network and SSH authenticates
//     both ends;
//   - commands: Conn.Executor is a storage.Executor (and StreamExecutor)
//     that runs a program with its arguments quoted for the remote shell,
//     stdin passed, the exit code as *storage.ExitError, and on cancel the
//     command's process group killed before Run returns: how the daemon
//     installs and starts the agent;
//   - consoles and migrations: Conn.DialTCP reaches a port on the node's
//     loopback (a VNC console), Conn.ListenUnix listens on a unix socket
//     on the node (the relay a node's libvirtd reaches another node's by).
//
// Logins: a key (the daemon's own), or a password once, when a node is
// added. Host keys: pinned (Config.HostKey), checked against a
// known_hosts file, or trusted on first use (TrustOnFirstUse, optionally
// against a fingerprint the operator gave). A refused login or a changed
// host key is ErrPermissionDenied naming the node; a node that cannot be
// reached is ErrUnavailable.
//
//	conn, err := sshnode.New(sshnode.Config{Name: "node1", Addr: "node1.example:22", User: "root",
//		PrivateKey: key, HostKey: pinnedKey})
//	c, err := agent.NewClient(agent.ClientConfig{Node: "node1",
//		Dial: func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, "/run/virtplane/agent.sock") }})
package sshnode

// Package sshnode reaches a node on another machine over SSH, as Proxmox
// and VMmanager reach theirs: the daemon keeps one SSH connection per node
// (Conn, golang.org/x/crypto/ssh, key login, host key checked against a
// known_hosts file), re-made on the first use after it dropped, and runs
// everything it does on the node through it:
//
//   - libvirt: Conn.DialUnix opens the node's libvirtd socket as a
//     direct-streamlocal channel, which vmm/libvirt takes as its
//     Config.Dial; libvirtd needs no TCP listener and no TLS.
//   - storage commands: Conn.Executor is a storage.Executor that runs
//     qemu-img (any program) on the node with its arguments quoted for the
//     remote shell, stdin passed, the exit code as *storage.ExitError, and
//     on cancel the command's process group killed before Run returns.
//   - network ports: Ports is a netport.Ports that runs the virtplaned
//     binary on the node (`virtplaned port setup|teardown|list`, JSON on
//     stdin and stdout, see ServePorts), which makes bridges, nftables and
//     tc there with netport's kernel implementation.
//
// The storage/file pool and the vmm/libvirt driver still read and write
// their directories (disk metadata, cloud-init seeds) through the daemon's
// own file system; SharedDir checks that a node's directory is the same
// directory for the daemon (shared storage, or the same host).
//
//	conn, err := sshnode.New(sshnode.Config{Name: "node1", Addr: "node1.example:22", User: "root",
//		PrivateKey: key, KnownHostsFile: "/etc/virtplane/known_hosts"})
//	drv, err := libvirt.New(libvirt.Config{StateDir: "/srv/shared/vmm",
//		Dial: func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, "/run/libvirt/libvirt-sock") }})
//	pool, err := file.New(file.Config{Name: "node1", Dir: "/srv/shared/images", Exec: conn.Executor()})
//	ports, err := sshnode.NewPorts(conn.Executor(), sshnode.PortsConfig{Node: "node1",
//		Agent: "/usr/local/bin/virtplaned", StateDir: "/var/lib/virtplane/ports"})
package sshnode

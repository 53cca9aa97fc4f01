package model

import (
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/virtplane/virtplane"
)

// LibvirtAddress is a node address that names a libvirtd on the daemon's
// host by its unix socket, for hosts running more than one (and for
// migrations between them):
//
//	qemu+unix:///system?socket=/run/libvirt/libvirt-sock
//	qemu+unix:///system?socket=/srv/h2/libvirt-sock&migration_address=10.0.0.2&netns=h2
//
// migration_address is the IP the node's libvirtd takes live-migration
// data on (empty: libvirt's choice); netns names the network namespace
// (`ip netns`) that libvirtd and its VMs' taps live in, where the VMs'
// network ports are made (empty: the daemon's own).
type LibvirtAddress struct {
	// URI is the address without the daemon's own parameters: what another
	// libvirtd opens to reach this one in a peer-to-peer migration.
	URI              string
	Socket           string
	MigrationAddress string
	Netns            string
}

// ParseLibvirtAddress reads a libvirt node address; ok is false, with no
// error, for addresses of other forms ("local", "sim", host:port). The
// error names field.
func ParseLibvirtAddress(field, a string) (addr LibvirtAddress, ok bool, err error) {
	if !strings.HasPrefix(a, "qemu+unix://") {
		return LibvirtAddress{}, false, nil
	}
	bad := func(why string) (LibvirtAddress, bool, error) {
		return LibvirtAddress{}, true, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: %s (qemu+unix:///system?socket=/path/to/libvirt-sock[&migration_address=IP])", field, a, why)
	}
	u, err := url.Parse(a)
	if err != nil {
		return bad(err.Error())
	}
	if u.Host != "" || u.Path != "/system" || u.User != nil || u.Fragment != "" {
		return bad("a local qemu:///system connection")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad(err.Error())
	}
	for k, v := range q {
		if (k != "socket" && k != "migration_address" && k != "netns") || len(v) != 1 {
			return bad("parameter " + k)
		}
	}
	sock := q.Get("socket")
	if !path.IsAbs(sock) || path.Clean(sock) != sock || strings.ContainsAny(sock, "\x00\n\r\t &?#%") {
		return bad("socket must be an absolute, clean path")
	}
	addr = LibvirtAddress{URI: "qemu+unix:///system?socket=" + sock, Socket: sock}
	if ma := q.Get("migration_address"); ma != "" {
		ip, err := netip.ParseAddr(ma)
		if err != nil || ip.Zone() != "" {
			return bad("migration_address must be an IP address")
		}
		addr.MigrationAddress = ip.String()
	}
	if ns := q.Get("netns"); ns != "" {
		if !netnsName.MatchString(ns) {
			return bad("netns must be the name of a network namespace (ip netns)")
		}
		addr.Netns = ns
	}
	return addr, true, nil
}

var netnsName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// SSHAddress is the address of a node on another machine that the daemon
// reaches over SSH, as Proxmox and VMmanager reach theirs:
//
//	ssh://root@node1.example:22?socket=/run/libvirt/libvirt-sock&agent=/var/lib/virtplane/bin/virtplaned&netns=vms
//
// The daemon logs in as User on Host:Port (with the operator's password or
// key once, when the node is added; with its own key after that, the host
// key pinned), installs its own binary at Agent on the node and runs it
// there as the node agent, which serves the libvirtd at Socket (or the
// node's LXD), storage, network ports and commands, in the network
// namespace Netns (empty: the node's own).
type SSHAddress struct {
	User   string
	Host   string // a host name or an IP address (without brackets)
	Port   int
	Socket string
	Agent  string
	Netns  string
}

// The defaults of an SSH address's optional parts.
const (
	DefaultSSHPort       = 22
	DefaultLibvirtSocket = "/run/libvirt/libvirt-sock"
	DefaultAgent         = "/var/lib/virtplane/bin/virtplaned"
)

// HostPort is what the daemon dials: host:port.
func (a SSHAddress) HostPort() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// String is the canonical form of the address (every part spelled out);
// it parses back to a.
func (a SSHAddress) String() string {
	q := "socket=" + a.Socket + "&agent=" + a.Agent
	if a.Netns != "" {
		q += "&netns=" + a.Netns
	}
	return "ssh://" + a.User + "@" + a.HostPort() + "?" + q
}

// ParseSSHAddress reads an ssh:// node address; ok is false, with no error,
// for addresses of other forms. The error names field and the part that is
// wrong.
func ParseSSHAddress(field, a string) (addr SSHAddress, ok bool, err error) {
	if !strings.HasPrefix(a, "ssh://") {
		return SSHAddress{}, false, nil
	}
	bad := func(part, why string) (SSHAddress, bool, error) {
		return SSHAddress{}, true, virtplane.Errorf(virtplane.ErrInvalidArgument,
			"%s %q: %s %s (ssh://USER@HOST[:PORT][?socket=PATH][&agent=PATH][&netns=NAME])", field, a, part, why)
	}
	u, err := url.Parse(a)
	if err != nil {
		return bad("", err.Error())
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" || u.RawFragment != "" {
		return bad("path", "must be empty")
	}
	if u.User == nil || u.User.Username() == "" {
		return bad("user", "is required")
	}
	if _, has := u.User.Password(); has {
		return bad("user", "must not carry a password (the daemon logs in with its key)")
	}
	addr.User = u.User.Username()
	if !sshUser.MatchString(addr.User) {
		return bad("user", "must be a login name")
	}
	addr.Host = u.Hostname()
	if ip, err := netip.ParseAddr(addr.Host); err == nil {
		if ip.Zone() != "" {
			return bad("host", "must not have a zone")
		}
		addr.Host = ip.String()
	} else if !hostName.MatchString(addr.Host) || strings.Contains(u.Host, "[") {
		return bad("host", "must be a host name or an IP address")
	}
	addr.Port = DefaultSSHPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return bad("port", "must be 1-65535")
		}
		addr.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("port", "must be 1-65535")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query", err.Error())
	}
	for k, v := range q {
		if k != "socket" && k != "agent" && k != "netns" {
			return bad("parameter "+k, "is unknown")
		}
		if len(v) != 1 {
			return bad("parameter "+k, "is given more than once")
		}
	}
	addr.Socket, addr.Agent = DefaultLibvirtSocket, DefaultAgent
	if s, has := q["socket"]; has {
		if !remotePath(s[0]) {
			return bad("socket", "must be an absolute, clean path")
		}
		addr.Socket = s[0]
	}
	if s, has := q["agent"]; has {
		if !remotePath(s[0]) {
			return bad("agent", "must be an absolute, clean path")
		}
		addr.Agent = s[0]
	}
	if s, has := q["netns"]; has {
		if !netnsName.MatchString(s[0]) {
			return bad("netns", "must be the name of a network namespace (ip netns)")
		}
		addr.Netns = s[0]
	}
	return addr, true, nil
}

// remotePath is an absolute, clean path that needs no quoting in a query
// (it is spelled back into String) and no care on a command line.
func remotePath(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && !strings.ContainsAny(p, "\x00\n\r\t &?#%=+;'\"\\$`")
}

var (
	// sshUser is a POSIX-portable login name.
	sshUser = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)
	// hostName is a DNS name (labels of letters, digits and hyphens).
	hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
)

package model

import (
	"net/netip"
	"net/url"
	"path"
	"regexp"
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

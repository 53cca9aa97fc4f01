package port

import (
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane"
)

// Namespace is a network namespace opened for ports: a netlink handle and
// an nftables connection bound to it.
type Namespace struct {
	Netlink *netlink.Handle
	NFT     *nftables.Conn
	ns      netns.NsHandle
}

// OpenNamespace opens the network namespace named name (as `ip netns`
// names it), or the current one for "". The handles stay bound to it
// whatever thread uses them: nftables dials a new netlink socket into it
// for every change.
func OpenNamespace(name string) (*Namespace, error) {
	n := &Namespace{ns: -1}
	var err error
	if name == "" {
		n.Netlink, err = netlink.NewHandle()
		if err == nil {
			n.NFT, err = nftables.New()
		}
	} else {
		if n.ns, err = netns.GetFromName(name); err != nil {
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "network namespace %s: %v", name, err)
		}
		n.Netlink, err = netlink.NewHandleAt(n.ns)
		if err == nil {
			n.NFT, err = nftables.New(nftables.WithNetNSFd(int(n.ns)))
		}
	}
	if err != nil {
		_ = n.Close()
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "network namespace %q: netlink: %v", name, err)
	}
	return n, nil
}

// Close releases the handles.
func (n *Namespace) Close() error {
	if n.Netlink != nil {
		n.Netlink.Close()
	}
	if n.ns >= 0 {
		return n.ns.Close()
	}
	return nil
}

// OpenKernelHost returns a Host over the network namespace name ("" for
// the current one), its records in stateDir, and what closes the
// namespace's handles.
func OpenKernelHost(stateDir, name string) (*Host, func() error, error) {
	ns, err := OpenNamespace(name)
	if err != nil {
		return nil, nil, err
	}
	h, err := NewKernelHost(stateDir, ns.Netlink, ns.NFT)
	if err != nil {
		_ = ns.Close()
		return nil, nil, err
	}
	return h, ns.Close, nil
}

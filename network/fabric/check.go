package fabric

import (
	"context"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/virtplane/virtplane"
)

// Reachability is the result of checking the fabric's check address
// (usually the VMs' gateway on the reflectors or the top-of-rack router).
type Reachability struct {
	Address   netip.Addr
	Reachable bool
	RTT       time.Duration
}

// CheckAddress sends one ICMP echo to addr (IPv4) from the current network
// namespace and waits for the answer until ctx ends or one second passes.
// An unanswered echo is a result (Reachable false), not an error; errors are
// for a check that could not be made (no raw socket: needs CAP_NET_RAW).
func CheckAddress(ctx context.Context, addr netip.Addr) (Reachability, error) {
	res := Reachability{Address: addr}
	if !addr.Is4() {
		return res, invalid("check address %v: want an IPv4 address", addr)
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return res, virtplane.Errorf(virtplane.ErrPermissionDenied, "check address %v: open icmp socket: %v", addr, err)
	}
	defer c.Close()
	deadline := time.Now().Add(time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("virtplane-check")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return res, err
	}
	start := time.Now()
	if _, err := c.WriteTo(b, &net.IPAddr{IP: addr.AsSlice()}); err != nil {
		return res, nil // no route: unreachable
	}
	buf := make([]byte, 1500)
	for {
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			return res, nil // deadline: unreachable
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && peer.String() == addr.String() {
			res.Reachable, res.RTT = true, time.Since(start)
			return res, nil
		}
	}
}

// Package shaping limits a VM port's bandwidth in both directions with tc,
// through netlink: what the VM receives is shaped by an HTB qdisc on the
// port's egress; what it sends enters the port's ingress, is redirected
// (u32 match-all + mirred) to a per-port IFB device and shaped there by
// TBF. Apply is idempotent (it reads the installed rates first) and changes
// only the direction that differs; Remove takes everything away, IFB included.
// tc police is not used (this test kernel lacks it).
//
//	s, _ := shaping.New(handle) // *netlink.Handle
//	changed, err := s.Apply(ctx, shaping.Limit{Port: "vnet3", InKbit: 20_000, OutKbit: 20_000})
package shaping

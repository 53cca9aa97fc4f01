// Package hostnet brings a host's links — bridges, VLAN sub-interfaces,
// bonds (all seven Linux modes), VxLAN devices, VM ports and addresses — to a
// declared state, idempotently: Apply reads the kernel, computes a plan with
// the pure function Plan, and executes it with an undo for every step, so a
// failure leaves the host as it was. Links Apply creates carry an owner tag
// (the interface alias) and are the only ones it ever deletes; ports made by
// someone else (taps, NICs) are only enslaved and released. Applying the same
// configuration twice changes nothing the second time.
//
// Host talks netlink through the small Netlink interface, which a
// *netlink.Handle satisfies; nettest.Recorder records the requests instead,
// for features a kernel lacks (the test kernel here has no 802.1Q, bonding
// or bridge VLAN filtering: those are checked against golden request logs).
// Fake is an in-memory Configurator for callers' tests; hostnettest.Run is
// the conformance suite both pass.
//
//	h, _ := hostnet.New(hostnet.Config{Netlink: handle})
//	changes, err := h.Apply(ctx, hostnet.Desired{
//		Bonds:   []hostnet.Bond{{Common: hostnet.Common{Name: "bond0"}, Mode: "802.3ad", Members: []string{"eth0", "eth1"}}},
//		VLANs:   []hostnet.VLAN{{Common: hostnet.Common{Name: "bond0.100", Master: "br100"}, Parent: "bond0", ID: 100}},
//		Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "br100"}}},
//		Ports:   []hostnet.Port{{Name: "vnet3", Master: "br100"}},
//	})
package hostnet

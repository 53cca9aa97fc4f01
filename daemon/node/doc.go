// Package node is the daemon's seam to its nodes. A node address is parsed
// once, by the registered node kinds, into an Address; a node is opened
// into one Backend that carries what the node offers: its hypervisor
// driver, its storage pools, its network ports, a command executor, a way
// to put files on it, how its hypervisor is reached for a live migration,
// its facts (capacity) and a dialer to its local ports. The daemon's flows
// and API handlers use only that value; they never look at what kind a
// node is.
//
// A kind of node (simulated, this host's libvirtd, another libvirtd on this
// host, a machine reached over SSH that runs the node agent) is a Kind:
// how its addresses read, how a new node of it is prepared (connect,
// install the agent, read capacity) and how it opens. Kinds are registered
// in a Kinds set, not chosen by switches.
//
//	kinds, err := node.NewKinds(simKind, localKind)
//	addr, err := kinds.Parse("address", "sim")
//	b, err := kinds.Open(ctx, node.Target{Node: n, Cluster: c, Address: addr})
//	vm, err := b.VMM.Create(ctx, spec)
package node

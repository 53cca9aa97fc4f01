// Package ipam manages IP address pools for virtual machines: pools made of
// IPv4 and IPv6 blocks (CIDRs or explicit ranges, with gateway, excluded and
// reserved addresses), attached to clusters, from which a Manager hands out
// single addresses or delegated IPv6 prefixes (a /64 per VM out of a /48).
//
// Allocation never gives an address twice: every change runs in one Store
// transaction per pool (see Store for the contract a SQL store follows), and
// the Manager checks its in-memory allocator against the pool's version in
// each transaction. The allocator keeps a two-level bitmap per block (one
// bit per address plus one bit per 64-bit word), a cursor that walks the
// block so that never-used addresses are handed out first, and a FIFO of
// released addresses that rest for a cooldown before reuse; owner data lives
// only in the store's records of allocated addresses. A whole IPv4 /8 costs
// about 2 MiB of allocator state.
//
//	store := ipam.NewMemoryStore()
//	m, _ := ipam.New(ipam.Config{Store: store}, ipam.WithCooldown(time.Hour))
//	blk, _ := ipam.ParseBlock(ipam.BlockSpec{Range: "192.0.2.0/24", Gateway: "192.0.2.1"})
//	_, _ = m.CreatePool(ctx, ipam.Pool{ID: "public", Clusters: []string{"fra1"}, Blocks: []ipam.Block{blk}})
//	a, _ := m.Allocate(ctx, "public", ipam.Request{Owner: ipam.Owner{VM: "vm-42", Interface: "eth0"}})
//	fmt.Println(a.Prefix, a.Gateway) // 192.0.2.2/32 192.0.2.1
//
// Subpackage ipamtest holds the Store conformance suite; subpackage dnsbl
// checks addresses against DNS blocklists.
package ipam

package ipam_test

import (
	"context"
	"fmt"
	"time"

	"github.com/virtplane/virtplane/network/ipam"
)

func ExampleManager_Allocate() {
	ctx := context.Background()
	m, err := ipam.New(ipam.Config{Store: ipam.NewMemoryStore()}, ipam.WithCooldown(time.Hour))
	if err != nil {
		panic(err)
	}
	v4, _ := ipam.ParseBlock(ipam.BlockSpec{Range: "192.0.2.0/24", Gateway: "192.0.2.1", Reserved: []string{"192.0.2.2"}})
	v6, _ := ipam.ParseBlock(ipam.BlockSpec{Range: "2001:db8:100::/48", PrefixLen: 64})
	if _, err := m.CreatePool(ctx, ipam.Pool{ID: "public", Clusters: []string{"fra1"}, Blocks: []ipam.Block{v4, v6}}); err != nil {
		panic(err)
	}
	vm := ipam.Owner{VM: "vm-42", Interface: "eth0"}
	addr, _ := m.Allocate(ctx, "public", ipam.Request{Owner: vm, Tags: map[string]string{"plan": "s1"}})
	prefix, _ := m.Allocate(ctx, "public", ipam.Request{Owner: vm, Prefix: true})
	fmt.Println(addr.Prefix, "via", addr.Gateway, "on", addr.Network)
	fmt.Println(prefix.Prefix)

	held, _ := m.LookupOwner(ctx, ipam.Owner{VM: "vm-42"})
	fmt.Println(len(held), "allocations for vm-42")

	_ = m.Release(ctx, "public", addr.Prefix)
	next, _ := m.Allocate(ctx, "public", ipam.Request{Owner: ipam.Owner{VM: "vm-43"}, Family: ipam.IPv4})
	fmt.Println(next.Prefix, "(192.0.2.3 cools down for an hour)")
	// Output:
	// 192.0.2.3/32 via 192.0.2.1 on 192.0.2.0/24
	// 2001:db8:100::/64
	// 2 allocations for vm-42
	// 192.0.2.4/32 (192.0.2.3 cools down for an hour)
}

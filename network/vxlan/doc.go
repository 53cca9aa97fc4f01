// Package vxlan builds per-user virtual L2 networks over VxLAN. Each network
// is a bridge and a VxLAN device named after its VNI, so that two users may
// name and address their networks alike and still never share a frame: the
// VNI is the only identity on the wire. Desired turns networks into a
// hostnet configuration; SyncFDB programs the device's forwarding entries.
//
// Full mesh (up to about ten hosts) uses head-end replication: one all-zero
// FDB entry per peer (FullMesh) and MAC learning on the device. In EVPN mode
// (see package fabric) learning is off and the entries come from BGP type-2
// (MAC) and type-3 (flood list) routes.
//
//	d, _ := vxlan.Desired(vxlan.Underlay{Local: self, Device: "eth0"},
//		[]vxlan.Network{{Name: "default", VNI: 100, Ports: []string{"vnet3"}}}, true)
//	_, _ = host.Apply(ctx, d)
//	_, _, _ = vxlan.SyncFDB(ctx, handle, "vx100", vxlan.FullMesh(self, peers))
package vxlan

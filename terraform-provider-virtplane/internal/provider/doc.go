// Package provider is the Terraform provider of virtplane, built on
// terraform-plugin-framework over the daemon's Go client (daemon/client).
//
// Resources: virtplane_cluster, virtplane_node, virtplane_ip_pool,
// virtplane_image, virtplane_vm, virtplane_user, virtplane_token; data
// sources for clusters, nodes, pools, images and VMs by name. Every resource
// imports by ID. What the API can change in place is updated in place (a
// VM's CPUs, memory, disk growth, limits and power state; a cluster's
// settings; a node's maintenance and vtep; a pool's blocks, a block whose
// gateway, excluded or reserved changed being removed and added again);
// the rest forces a replacement, which the plan shows (a VM's address and
// dual_stack among it). VM creates carry an
// idempotency key, so the client's retries never make a second VM, and the
// provider waits for every task to end.
//
//	provider "virtplane" {
//	  endpoint = "http://127.0.0.1:8080"   # or VIRTPLANE_ENDPOINT
//	  token    = var.virtplane_token        # or VIRTPLANE_TOKEN
//	}
package provider

package provider

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/network/ipam/dnsbl"
)

// limitedVM is a VM with every limit the provider manages; outPorts is
// its block_out_ports, extra more limits.
func limitedVM(outPorts, extra string) string {
	return infra + `
resource "virtplane_vm" "lim" {
  name       = "lim"
  cluster_id = virtplane_cluster.fra1.id
  image_id   = virtplane_image.debian.id
  pool_id    = virtplane_ip_pool.public.id
  cpus       = 2
  memory_mib = 1024
  disk_gib   = 10
  limits = {
    cpu_percent     = 50
    cpu_weight      = 200
    io_weight       = 300
    net_in_mbit     = 100
    net_out_mbit    = 20
    disk_iops       = 500
    block_in_ports  = ["6000-6010/udp", "23/tcp"]
    block_out_ports = ` + outPorts + `
` + extra + `
  }
  depends_on = [virtplane_node.n]
}
`
}

// vmLimits reads the limits of the one VM through the API.
func (e *accEnv) vmLimits() (model.VM, error) {
	vms, err := e.c.ListVMs(context.Background(), client.VMListOptions{})
	if err != nil {
		return model.VM{}, err
	}
	if len(vms.Items) != 1 {
		return model.VM{}, fmt.Errorf("%d VMs, want 1", len(vms.Items))
	}
	return vms.Items[0], nil
}

// TestAccLimits: a VM with weights, per-direction network limits and
// blocked ports is created with them; a second plan is empty; a change of
// block_out_ports updates the same VM in place; max_connections in the
// bridge cluster fails with the API's 501.
func TestAccLimits(t *testing.T) {
	e := newAccEnv(t)
	var id string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkNothingLeft,
		Steps: []resource.TestStep{
			{
				Config: e.provider() + limitedVM(`["25/tcp"]`, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("virtplane_vm.lim", "limits.block_in_ports.#", "2"),
					resource.TestCheckResourceAttr("virtplane_vm.lim", "limits.block_out_ports.0", "25/tcp"),
					resource.TestCheckResourceAttr("virtplane_vm.lim", "limits.cpu_weight", "200"),
					resource.TestCheckNoResourceAttr("virtplane_vm.lim", "limits.net_mbit"),
					resource.TestCheckNoResourceAttr("virtplane_vm.lim", "limits.max_connections"),
					func(s *terraform.State) error {
						id = s.RootModule().Resources["virtplane_vm.lim"].Primary.ID
						vm, err := e.vmLimits()
						if err != nil {
							return err
						}
						want := model.Limits{CPUPercent: 50, CPUWeight: 200, IOWeight: 300, NetInMbit: 100, NetOutMbit: 20, DiskIOPS: 500,
							BlockInPorts: []string{"6000-6010/udp", "23/tcp"}, BlockOutPorts: []string{"25/tcp"}}
						if !vm.Limits.Equal(want) {
							return fmt.Errorf("limits %+v, want %+v", vm.Limits, want)
						}
						return nil
					},
				),
			},
			{Config: e.provider() + limitedVM(`["25/tcp"]`, ""), PlanOnly: true},
			{
				Config: e.provider() + limitedVM(`["25/tcp", "465/tcp", "587/tcp"]`, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("virtplane_vm.lim", plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(s *terraform.State) error {
					if got := s.RootModule().Resources["virtplane_vm.lim"].Primary.ID; got != id {
						return fmt.Errorf("the VM was replaced: %s, was %s", got, id)
					}
					vm, err := e.vmLimits()
					if err != nil {
						return err
					}
					if vm.ID != id || !slices.Equal(vm.Limits.BlockOutPorts, []string{"25/tcp", "465/tcp", "587/tcp"}) || vm.Limits.CPUWeight != 200 || vm.Limits.NetInMbit != 100 {
						return fmt.Errorf("vm %s limits %+v: want the full set with three blocked outbound ports", vm.ID, vm.Limits)
					}
					return nil
				},
			},
			{
				// The import reads every limit back.
				ResourceName: "virtplane_vm.lim", ImportState: true, ImportStateVerify: true,
			},
			{
				// A bad port range fails at plan time.
				Config:      e.provider() + limitedVM(`["25"]`, ""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Invalid port range`),
			},
			{
				// net_mbit with a per-direction limit fails at plan time.
				Config:      e.provider() + limitedVM(`["25/tcp"]`, "    net_mbit = 10\n"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Invalid Attribute Combination`),
			},
			{
				// A connection cap holds in routed clusters only: the bridge
				// cluster's VM refuses it with the API's 501.
				Config:      e.provider() + limitedVM(`["25/tcp", "465/tcp", "587/tcp"]`, "    max_connections = 100\n"),
				ExpectError: regexp.MustCompile(`(?s)501.*Not.*Implemented.*max_connections.*routed`),
			},
		},
	})
}

// dualPool is a pool of an IPv4 block with exclusions and a reservation,
// an IPv6 block and a spare IPv4 block; VM dual takes the reserved address
// and an IPv6 one, VM plain the next free IPv4 one (the spare block has
// none: its addresses are excluded or reserved). spare is the spare
// block's reserved list.
func dualPool(spare string) string {
	return infra + `
resource "virtplane_ip_pool" "dual" {
  name        = "dual"
  cluster_ids = [virtplane_cluster.fra1.id]
  block {
    range    = "203.0.113.0/28"
    gateway  = "203.0.113.1"
    excluded = ["203.0.113.2-203.0.113.4"]
    reserved = ["203.0.113.10"]
  }
  block {
    range   = "2001:db8:1::/64"
    gateway = "2001:db8:1::1"
  }
  block {
    range    = "203.0.113.32-203.0.113.35"
    excluded = ["203.0.113.32-203.0.113.33"]
    reserved = ` + spare + `
  }
}
resource "virtplane_vm" "dual" {
  name       = "dual"
  cluster_id = virtplane_cluster.fra1.id
  image_id   = virtplane_image.debian.id
  pool_id    = virtplane_ip_pool.dual.id
  cpus       = 1
  memory_mib = 512
  disk_gib   = 5
  address    = "203.0.113.10"
  dual_stack = true
  depends_on = [virtplane_node.n]
}
resource "virtplane_vm" "plain" {
  name       = "plain"
  cluster_id = virtplane_cluster.fra1.id
  image_id   = virtplane_image.debian.id
  pool_id    = virtplane_ip_pool.dual.id
  cpus       = 1
  memory_mib = 512
  disk_gib   = 5
  depends_on = [virtplane_node.n, virtplane_vm.dual]
}
`
}

// poolBlock is the block of range rng of the pool named name.
func (e *accEnv) poolBlock(name, rng string) (model.IPPool, model.IPBlock, error) {
	pools, err := e.c.ListPools(context.Background(), client.ListOptions{})
	if err != nil {
		return model.IPPool{}, model.IPBlock{}, err
	}
	for _, p := range pools.Items {
		if p.Name != name {
			continue
		}
		for _, b := range p.Blocks {
			if b.Range == rng {
				return p, b, nil
			}
		}
	}
	return model.IPPool{}, model.IPBlock{}, fmt.Errorf("no block %s in pool %s", rng, name)
}

// TestAccAddresses: a pool's blocks with excluded and reserved addresses;
// a dual-stack VM given the reserved address gets it and an IPv6 one, a
// VM without an address neither an excluded nor the reserved one; second
// plan empty; the VM and the pool import to the same state; an exclusion
// added outside Terraform (as a DNSBL check adds them) is no diff and
// survives a change of its block, which re-creates the block in place; a
// change of a block in use is refused and changes nothing.
func TestAccAddresses(t *testing.T) {
	e := newAccEnv(t)
	var dualID, poolID string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkNothingLeft,
		Steps: []resource.TestStep{
			{
				Config: e.provider() + dualPool(`["203.0.113.34", "203.0.113.35"]`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("virtplane_vm.dual", "addresses.#", "2"),
					resource.TestCheckResourceAttr("virtplane_vm.dual", "addresses.0", "203.0.113.10"),
					resource.TestCheckResourceAttr("virtplane_vm.dual", "address", "203.0.113.10"),
					resource.TestCheckResourceAttr("virtplane_vm.dual", "dual_stack", "true"),
					resource.TestCheckResourceAttr("virtplane_vm.plain", "addresses.#", "1"),
					resource.TestCheckResourceAttr("virtplane_vm.plain", "dual_stack", "false"),
					resource.TestCheckResourceAttrPair("virtplane_vm.plain", "address", "virtplane_vm.plain", "addresses.0"),
					resource.TestCheckTypeSetElemNestedAttrs("virtplane_ip_pool.dual", "block.*", map[string]string{
						"range": "2001:db8:1::/64", "family": "ipv6", "excluded_extra.#": "0"}),
					resource.TestCheckTypeSetElemNestedAttrs("virtplane_ip_pool.dual", "block.*", map[string]string{
						"range": "203.0.113.0/28", "family": "ipv4", "excluded.0": "203.0.113.2-203.0.113.4", "reserved.0": "203.0.113.10"}),
					func(s *terraform.State) error {
						dualID = s.RootModule().Resources["virtplane_vm.dual"].Primary.ID
						poolID = s.RootModule().Resources["virtplane_ip_pool.dual"].Primary.ID
						r := s.RootModule().Resources["virtplane_vm.dual"].Primary.Attributes
						v6, err := netip.ParseAddr(r["addresses.1"])
						if err != nil || !netip.MustParsePrefix("2001:db8:1::/64").Contains(v6) {
							return fmt.Errorf("dual's second address %q: want an IPv6 one of 2001:db8:1::/64", r["addresses.1"])
						}
						plain := s.RootModule().Resources["virtplane_vm.plain"].Primary.Attributes["addresses.0"]
						a, err := netip.ParseAddr(plain)
						if err != nil || !netip.MustParsePrefix("203.0.113.0/28").Contains(a) {
							return fmt.Errorf("plain's address %q: want an IPv4 one of the pool", plain)
						}
						for _, no := range []string{"203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.10"} {
							if plain == no {
								return fmt.Errorf("plain got %s, excluded or reserved", plain)
							}
						}
						vm, err := e.c.GetVM(context.Background(), dualID)
						if err != nil || !vm.DualStack {
							return fmt.Errorf("dual in the API: %+v, %v; want dual_stack", vm, err)
						}
						return nil
					},
				),
			},
			{Config: e.provider() + dualPool(`["203.0.113.34", "203.0.113.35"]`), PlanOnly: true},
			{ResourceName: "virtplane_vm.dual", ImportState: true, ImportStateVerify: true},
			{ResourceName: "virtplane_vm.plain", ImportState: true, ImportStateVerify: true},
			{ResourceName: "virtplane_ip_pool.dual", ImportState: true, ImportStateVerify: true},
			{
				// address left out later: the VM keeps it, no change.
				Config:   e.provider() + strings.Replace(dualPool(`["203.0.113.34", "203.0.113.35"]`), `address    = "203.0.113.10"`, ``, 1),
				PlanOnly: true,
			},
			{
				// An exclusion the daemon adds (here: the spare block made
				// again outside Terraform with one more) is no diff.
				PreConfig: func() {
					ctx := context.Background()
					p, b, err := e.poolBlock("dual", "203.0.113.32-203.0.113.35")
					require.NoError(t, err)
					require.NoError(t, e.c.RemovePoolBlock(ctx, p.ID, b.ID))
					_, err = e.c.AddPoolBlock(ctx, p.ID, api.BlockBody{Range: b.Range, Excluded: append(b.Excluded, "203.0.113.33"), Reserved: b.Reserved})
					require.NoError(t, err)
				},
				Config:   e.provider() + dualPool(`["203.0.113.34", "203.0.113.35"]`),
				PlanOnly: true,
			},
			{
				// A change of the spare block's reservations re-creates it in
				// place, the daemon's exclusion kept; the pool stays.
				Config: e.provider() + dualPool(`["203.0.113.34"]`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("virtplane_ip_pool.dual", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("virtplane_vm.dual", plancheck.ResourceActionNoop),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckTypeSetElemNestedAttrs("virtplane_ip_pool.dual", "block.*", map[string]string{
						"range": "203.0.113.32-203.0.113.35", "excluded.#": "1", "excluded_extra.#": "1", "excluded_extra.0": "203.0.113.33", "reserved.#": "1"}),
					func(s *terraform.State) error {
						if got := s.RootModule().Resources["virtplane_ip_pool.dual"].Primary.ID; got != poolID {
							return fmt.Errorf("the pool was replaced: %s, was %s", got, poolID)
						}
						_, b, err := e.poolBlock("dual", "203.0.113.32-203.0.113.35")
						if err != nil {
							return err
						}
						if !slices.Equal(b.Excluded, []string{"203.0.113.32-203.0.113.33", "203.0.113.33"}) || !slices.Equal(b.Reserved, []string{"203.0.113.34"}) {
							return fmt.Errorf("block %+v: want excluded .32-.33 and .33, reserved .34", b)
						}
						return nil
					},
				),
			},
			{
				// A block a VM holds an address of is not re-created: the
				// API refuses, the block stays as it was.
				Config:      e.provider() + strings.Replace(dualPool(`["203.0.113.34"]`), `"203.0.113.2-203.0.113.4"`, `"203.0.113.2-203.0.113.5"`, 1),
				ExpectError: regexp.MustCompile(`(?s)Re-creating.*block.*203\.0\.113\.0/28`),
			},
			{
				// Back to the configuration as applied: nothing to do.
				PreConfig: func() {
					_, b, err := e.poolBlock("dual", "203.0.113.0/28")
					require.NoError(t, err)
					require.Equal(t, []string{"203.0.113.2-203.0.113.4"}, b.Excluded, "block %+v", b)
				},
				Config:   e.provider() + dualPool(`["203.0.113.34"]`),
				PlanOnly: true,
			},
			{
				// A different address replaces the VM.
				Config: e.provider() + strings.Replace(dualPool(`["203.0.113.34"]`), `address    = "203.0.113.10"`, `address    = "203.0.113.14"`, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("virtplane_vm.dual", plancheck.ResourceActionDestroyBeforeCreate),
						plancheck.ExpectResourceAction("virtplane_vm.plain", plancheck.ResourceActionNoop),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("virtplane_vm.dual", "addresses.0", "203.0.113.14"),
					resource.TestCheckResourceAttr("virtplane_vm.dual", "addresses.#", "2"),
				),
			},
			{
				// dual_stack changed: a replacement, with one address (another:
				// a released address cools down before it is handed out again).
				Config: e.provider() + strings.NewReplacer(`address    = "203.0.113.10"`, `address    = "203.0.113.13"`, `dual_stack = true`, `dual_stack = false`).
					Replace(dualPool(`["203.0.113.34"]`)),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("virtplane_vm.dual", plancheck.ResourceActionDestroyBeforeCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("virtplane_vm.dual", "addresses.#", "1"),
					resource.TestCheckResourceAttr("virtplane_vm.dual", "address", "203.0.113.13"),
					resource.TestCheckResourceAttr("virtplane_vm.dual", "dual_stack", "false"),
				),
			},
		},
	})
}

// dnsblPool is a pool of one block with an exclusion; reserved is its
// reserved list.
func dnsblPool(reserved string) string {
	return infra + `
resource "virtplane_ip_pool" "bl" {
  name        = "bl"
  cluster_ids = [virtplane_cluster.fra1.id]
  block {
    range    = "198.51.100.0/28"
    excluded = ["198.51.100.2"]
    reserved = ` + reserved + `
  }
}
`
}

// TestAccDNSBLExclusion: an address a DNSBL check excludes (the daemon
// adds it to the block's excluded) is no diff: it shows in excluded_extra,
// and a change of the block that re-creates it keeps it.
func TestAccDNSBLExclusion(t *testing.T) {
	r := dnsbl.NewFakeResolver()
	r.SetA("7.100.51.198.bl.test", netip.MustParseAddr("127.0.0.2"))
	e := newAccEnv(t, func(c *daemon.Config) { c.DNSBL = daemon.DNSBLConfig{Zones: []string{"bl.test"}, Resolver: r} })
	blockOf := func() (model.IPBlock, error) {
		_, b, err := e.poolBlock("bl", "198.51.100.0/28")
		return b, err
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkNothingLeft,
		Steps: []resource.TestStep{
			{Config: e.provider() + dnsblPool(`["198.51.100.5"]`)},
			{
				// The check excludes the listed address: no diff.
				PreConfig: func() {
					p, _, err := e.poolBlock("bl", "198.51.100.0/28")
					require.NoError(t, err)
					rep, err := e.c.CheckPoolDNSBL(context.Background(), p.ID, api.DNSBLCheckBody{Addresses: []string{"198.51.100.7", "198.51.100.8"}, ExcludeListed: true})
					require.NoError(t, err)
					require.Equal(t, []string{"198.51.100.7"}, rep.Excluded)
					b, err := blockOf()
					require.NoError(t, err)
					require.Equal(t, []string{"198.51.100.2", "198.51.100.7"}, b.Excluded)
				},
				Config:   e.provider() + dnsblPool(`["198.51.100.5"]`),
				PlanOnly: true,
			},
			{
				Config: e.provider() + dnsblPool(`["198.51.100.5"]`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.TestCheckTypeSetElemNestedAttrs("virtplane_ip_pool.bl", "block.*", map[string]string{
					"excluded.#": "1", "excluded.0": "198.51.100.2", "excluded_extra.#": "1", "excluded_extra.0": "198.51.100.7"}),
			},
			{
				// A change of the block re-creates it, the exclusion kept.
				Config: e.provider() + dnsblPool(`["198.51.100.5", "198.51.100.6"]`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("virtplane_ip_pool.bl", plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					b, err := blockOf()
					if err != nil {
						return err
					}
					if !slices.Equal(b.Excluded, []string{"198.51.100.2", "198.51.100.7"}) || !slices.Equal(b.Reserved, []string{"198.51.100.5", "198.51.100.6"}) {
						return fmt.Errorf("block %+v: want the DNSBL exclusion kept, two reservations", b)
					}
					return nil
				},
			},
		},
	})
}

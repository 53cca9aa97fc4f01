package provider

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
	"github.com/virtplane/virtplane/internal/testenv"
)

// accEnv is a daemon on simulated nodes for one acceptance test, and the
// real Terraform CLI that `make env-terraform` built.
type accEnv struct {
	url, token string
	c          *client.Client
	srv        *daemon.Server
}

func newAccEnv(t *testing.T, opts ...func(*daemon.Config)) *accEnv {
	tf := testenv.RequireTerraform(t)
	dir := t.TempDir()
	// Terraform here reaches no registry: providers come from this process
	// (reattach) and installation looks only into an empty mirror.
	mirror := filepath.Join(dir, "mirror")
	require.NoError(t, os.MkdirAll(mirror, 0o755))
	rc := filepath.Join(dir, "terraformrc")
	require.NoError(t, os.WriteFile(rc, []byte(fmt.Sprintf("provider_installation {\n  filesystem_mirror {\n    path = %q\n  }\n}\n", mirror)), 0o644))
	t.Setenv("TF_ACC", "1")
	t.Setenv("TF_ACC_TERRAFORM_PATH", tf.Bin)
	t.Setenv("TF_CLI_CONFIG_FILE", rc)
	t.Setenv("TF_ACC_PROVIDER_NAMESPACE", "virtplane") // the source virtplane/virtplane
	t.Setenv("CHECKPOINT_DISABLE", "1")
	t.Setenv("TF_IN_AUTOMATION", "1")

	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "virtplane.db"))
	require.NoError(t, err)
	cfg := daemon.Config{Store: st, Instance: "tf-acc", DataDir: dir, Workers: 8}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := daemon.New(cfg)
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); stop(); <-done; _ = srv.Close(); _ = st.Close() })
	token, err := srv.Bootstrap(t.Context(), "admin-password")
	require.NoError(t, err)
	return &accEnv{url: hs.URL, token: token, c: client.New(hs.URL, token), srv: srv}
}

func (e *accEnv) factories() map[string]func() (tfprotov6.ProviderServer, error) {
	return map[string]func() (tfprotov6.ProviderServer, error){"virtplane": providerserver.NewProtocol6WithError(New("test")())}
}

func (e *accEnv) provider() string {
	return fmt.Sprintf(`
terraform {
  required_providers {
    virtplane = { source = "virtplane/virtplane" }
  }
}
provider "virtplane" {
  endpoint      = %q
  token         = %q
  poll_interval = "50ms"
}
`, e.url, e.token)
}

// infra is a cluster, two simulated nodes, a pool and an image.
const infra = `
resource "virtplane_cluster" "fra1" {
  name           = "fra1"
  cpu_overcommit = 4
  strategy       = "even"
  storage {
    name    = "fast"
    driver  = "lvm"
    path    = "vgfast"
    tags    = ["ssd"]
    options = { no_activation = "true" }
  }
  storage {
    name            = "bulk"
    driver          = "file"
    path            = "/var/lib/virtplane/bulk"
    default         = true
    disk_overcommit = 2
  }
  storage {
    name    = "old"
    driver  = "file"
    path    = "/var/lib/virtplane/old"
    enabled = false
  }
}
resource "virtplane_node" "n" {
  count      = 2
  cluster_id = virtplane_cluster.fra1.id
  name       = "n${count.index + 1}"
  address    = "sim"
  cores      = 16
  memory_mib = 65536
  disk_gib   = 2000
}
resource "virtplane_ip_pool" "public" {
  name        = "public"
  cluster_ids = [virtplane_cluster.fra1.id]
  block {
    range   = "192.0.2.0/26"
    gateway = "192.0.2.1"
  }
}
resource "virtplane_image" "debian" {
  name   = "debian-12"
  source = "/var/lib/virtplane/images/debian-12.qcow2"
}
`

func vms(cpus int) string {
	return fmt.Sprintf(`
resource "virtplane_vm" "web" {
  count      = 3
  name       = "web${count.index + 1}"
  cluster_id = virtplane_cluster.fra1.id
  image_id   = virtplane_image.debian.id
  pool_id    = virtplane_ip_pool.public.id
  cpus       = %d
  memory_mib = 1024
  disk_gib   = 10
  ssh_keys   = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey web"]
  user_data  = "#cloud-config\nhostname: web${count.index + 1}\n"
  limits = {
    net_mbit = 100
  }
  depends_on = [virtplane_node.n]
}
resource "virtplane_user" "carol" {
  name     = "carol"
  password = "carol-password"
}
resource "virtplane_token" "ci" {
  name = "ci"
  ttl  = "24h"
}
data "virtplane_vm" "web1" {
  name       = virtplane_vm.web[0].name
}
data "virtplane_cluster" "fra1" {
  name = virtplane_cluster.fra1.name
}
data "virtplane_node" "n2" {
  id = virtplane_node.n[1].id
}
data "virtplane_ip_pool" "public" {
  name = virtplane_ip_pool.public.name
}
data "virtplane_image" "debian" {
  name = virtplane_image.debian.name
}
`, cpus)
}

// stateID reads the ID of a resource of the state (counted ones are
// name.N there, name[N] in an import address).
func stateID(key string) resource.ImportStateIdFunc {
	return func(s *terraform.State) (string, error) {
		r, ok := s.RootModule().Resources[key]
		if !ok {
			return "", fmt.Errorf("no %s in the state", key)
		}
		return r.Primary.ID, nil
	}
}

// legacy is the resource of a VM made outside Terraform (outsideVM).
const legacy = `
resource "virtplane_vm" "legacy" {
  name       = "legacy"
  cluster_id = virtplane_cluster.fra1.id
  image_id   = virtplane_image.debian.id
  pool_id    = virtplane_ip_pool.public.id
  cpus       = 2
  memory_mib = 2048
  disk_gib   = 20
}
`

// TestAccLifecycle: apply of a cluster, two simulated nodes, a pool, an
// image and three VMs; a second plan is empty; a CPU change updates the
// VMs in place; every resource imports to the same state; a VM made outside
// Terraform imports and then plans no change; destroy leaves nothing.
func TestAccLifecycle(t *testing.T) {
	e := newAccEnv(t)
	var legacyID string
	var webIDs [3]string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkNothingLeft,
		Steps: []resource.TestStep{
			{
				Config: e.provider() + infra + vms(2),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("virtplane_vm.web.0", "state", "running"),
					resource.TestCheckResourceAttr("virtplane_vm.web.2", "cpus", "2"),
					resource.TestCheckResourceAttrSet("virtplane_vm.web.1", "node_id"),
					resource.TestCheckResourceAttr("virtplane_vm.web.0", "addresses.#", "1"),
					resource.TestCheckResourceAttrPair("data.virtplane_vm.web1", "id", "virtplane_vm.web.0", "id"),
					resource.TestCheckResourceAttrPair("data.virtplane_vm.web1", "node_id", "virtplane_vm.web.0", "node_id"),
					resource.TestCheckResourceAttr("data.virtplane_vm.web1", "state", "running"),
					resource.TestCheckResourceAttrPair("data.virtplane_cluster.fra1", "id", "virtplane_cluster.fra1", "id"),
					resource.TestCheckResourceAttr("data.virtplane_cluster.fra1", "network_mode", "bridge"),
					resource.TestCheckResourceAttr("data.virtplane_node.n2", "name", "n2"),
					resource.TestCheckResourceAttr("data.virtplane_node.n2", "address", "sim"),
					resource.TestCheckResourceAttrPair("data.virtplane_ip_pool.public", "id", "virtplane_ip_pool.public", "id"),
					resource.TestCheckResourceAttr("data.virtplane_ip_pool.public", "cluster_ids.#", "1"),
					resource.TestCheckResourceAttrPair("data.virtplane_image.debian", "id", "virtplane_image.debian", "id"),
					resource.TestCheckResourceAttrSet("virtplane_token.ci", "token"),
					func(s *terraform.State) error {
						for i := range webIDs {
							webIDs[i] = s.RootModule().Resources[fmt.Sprintf("virtplane_vm.web.%d", i)].Primary.ID
						}
						return e.checkVMs(3, 2, "running")
					},
				),
			},
			{
				// A second plan of the same configuration changes nothing.
				Config:   e.provider() + infra + vms(2),
				PlanOnly: true,
			},
			{
				// A CPU change updates every VM in place: the same VMs, 4 CPUs each.
				Config: e.provider() + infra + vms(4),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("virtplane_vm.web[0]", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("virtplane_vm.web[1]", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("virtplane_vm.web[2]", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("virtplane_cluster.fra1", plancheck.ResourceActionNoop),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(s *terraform.State) error {
					for i, id := range webIDs {
						if got := s.RootModule().Resources[fmt.Sprintf("virtplane_vm.web.%d", i)].Primary.ID; got != id {
							return fmt.Errorf("web%d was replaced: %s, was %s", i+1, got, id)
						}
					}
					return e.checkVMs(3, 4, "running")
				},
			},
			// Every resource imports to the state it has.
			{ResourceName: "virtplane_cluster.fra1", ImportState: true, ImportStateVerify: true},
			{ResourceName: "virtplane_node.n[1]", ImportState: true, ImportStateVerify: true, ImportStateIdFunc: stateID("virtplane_node.n.1")},
			{ResourceName: "virtplane_ip_pool.public", ImportState: true, ImportStateVerify: true},
			{ResourceName: "virtplane_image.debian", ImportState: true, ImportStateVerify: true},
			{ResourceName: "virtplane_vm.web[1]", ImportState: true, ImportStateVerify: true, ImportStateIdFunc: stateID("virtplane_vm.web.1"),
				ImportStateVerifyIgnore: []string{"user_data"}}, // the API does not return it
			{ResourceName: "virtplane_user.carol", ImportState: true, ImportStateVerify: true,
				ImportStateVerifyIgnore: []string{"password"}}, // nor passwords
			{ResourceName: "virtplane_token.ci", ImportState: true, ImportStateVerify: true,
				ImportStateVerifyIgnore: []string{"token", "ttl"}}, // nor secrets
			{
				// A VM made outside Terraform is imported...
				PreConfig:          func() { legacyID = e.outsideVM(t) },
				Config:             e.provider() + infra + vms(4) + legacy,
				ResourceName:       "virtplane_vm.legacy",
				ImportState:        true,
				ImportStatePersist: true,
				ImportStateIdFunc:  func(*terraform.State) (string, error) { return legacyID, nil },
			},
			{
				// ...and then a plan shows no change.
				Config: e.provider() + infra + vms(4) + legacy,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

// outsideVM creates a VM through the client, as an operator did before
// Terraform managed it.
func (e *accEnv) outsideVM(t *testing.T) string {
	ctx := t.Context()
	cl, _ := e.c.ListClusters(ctx, client.ListOptions{})
	img, _ := e.c.ListImages(ctx, client.ListOptions{})
	pools, _ := e.c.ListPools(ctx, client.ListOptions{})
	vm, tv, err := e.c.CreateVM(ctx, api.VMCreateBody{Name: "legacy", ClusterID: cl.Items[0].ID, ImageID: img.Items[0].ID, PoolID: pools.Items[0].ID,
		CPUs: 2, MemoryMiB: 2048, DiskGiB: 20}, "")
	require.NoError(t, err)
	require.NoError(t, e.c.Task(tv).Wait(ctx))
	return vm.ID
}

// checkVMs checks through the API that n VMs run with cpus CPUs each.
func (e *accEnv) checkVMs(n, cpus int, state string) error {
	p, err := e.c.ListVMs(context.Background(), client.VMListOptions{})
	if err != nil {
		return err
	}
	if len(p.Items) != n {
		return fmt.Errorf("%d VMs in the daemon, want %d", len(p.Items), n)
	}
	for _, vm := range p.Items {
		if vm.CPUs != cpus || vm.State != state {
			return fmt.Errorf("vm %s: %d CPUs, %s; want %d, %s", vm.Name, vm.CPUs, vm.State, cpus, state)
		}
	}
	return nil
}

// checkNothingLeft checks that destroy left no object in the daemon but
// the admin who ran it and their bootstrap token.
func (e *accEnv) checkNothingLeft(*terraform.State) error {
	ctx := context.Background()
	var left []string
	vms, err := e.c.ListVMs(ctx, client.VMListOptions{})
	if err != nil {
		return err
	}
	for _, v := range vms.Items {
		left = append(left, "vm "+v.Name+" ("+v.State+")")
	}
	nodes, err := e.c.ListNodes(ctx, client.NodeListOptions{})
	if err != nil {
		return err
	}
	for _, n := range nodes.Items {
		left = append(left, "node "+n.Name)
	}
	cls, _ := e.c.ListClusters(ctx, client.ListOptions{})
	for _, c := range cls.Items {
		left = append(left, "cluster "+c.Name)
	}
	pools, _ := e.c.ListPools(ctx, client.ListOptions{})
	for _, p := range pools.Items {
		left = append(left, "pool "+p.Name)
	}
	imgs, _ := e.c.ListImages(ctx, client.ListOptions{})
	for _, i := range imgs.Items {
		left = append(left, "image "+i.Name)
	}
	users, _ := e.c.ListUsers(ctx, client.ListOptions{})
	for _, u := range users.Items {
		if u.Name != "admin" {
			left = append(left, "user "+u.Name)
		}
	}
	toks, _ := e.c.ListTokens(ctx)
	for _, tk := range toks {
		if tk.Name != "bootstrap" {
			left = append(left, "token "+tk.Name)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("destroy left %s", strings.Join(left, ", "))
	}
	return nil
}

// TestAccParallel: an apply of 20 VMs at Terraform's -parallelism=10 (what
// terraform-exec passes) succeeds, the creates overlap in the daemon, and
// destroy removes them all.
func TestAccParallel(t *testing.T) {
	e := newAccEnv(t)
	cfg := e.provider() + infra + `
resource "virtplane_vm" "fleet" {
  count      = 20
  name       = "fleet${count.index}"
  cluster_id = virtplane_cluster.fra1.id
  image_id   = virtplane_image.debian.id
  pool_id    = virtplane_ip_pool.public.id
  cpus       = 1
  memory_mib = 512
  disk_gib   = 5
  depends_on = [virtplane_node.n]
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkNothingLeft,
		Steps: []resource.TestStep{{
			Config: cfg,
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			Check: func(*terraform.State) error {
				if err := e.checkVMs(20, 1, "running"); err != nil {
					return err
				}
				return e.checkOverlap(2)
			},
		}},
	})
}

// checkOverlap checks that at least n vm.create tasks were in the daemon
// at once (from creation to end): the apply ran in parallel.
func (e *accEnv) checkOverlap(n int) error {
	p, err := e.c.ListTasks(context.Background(), client.TaskListOptions{ListOptions: client.ListOptions{Limit: 1000}})
	if err != nil {
		return err
	}
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, tk := range p.Items {
		if tk.Kind == "vm.create" {
			edges = append(edges, edge{tk.Created, 1}, edge{tk.Finished, -1})
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	most, cur := 0, 0
	for _, ed := range edges {
		cur += ed.delta
		most = max(most, cur)
	}
	if most < n {
		return fmt.Errorf("at most %d VM creates were under way at once, want %d or more", most, n)
	}
	return nil
}

// TestAccPlanTimeValidation: bad values fail at plan time, naming the
// attribute, before anything is created.
func TestAccPlanTimeValidation(t *testing.T) {
	e := newAccEnv(t)
	cases := []struct{ cfg, want string }{
		{"virtplane_cluster\" \"x\" {\n name = \"Bad_Name\"", "name"},
		{"virtplane_cluster\" \"x\" {\n name = \"c1\"\n network_mode = \"mesh\"", "network_mode"},
		{"virtplane_cluster\" \"x\" {\n name = \"c1\"\n cpu_overcommit = 100", "cpu_overcommit"},
		{"virtplane_node\" \"x\" {\n cluster_id = \"c\"\n name = \"n1\"\n address = \"ftp://x\"\n cores = 1\n memory_mib = 1024\n disk_gib = 1", "address"},
		{"virtplane_ip_pool\" \"x\" {\n name = \"p\"\n cluster_ids = [\"c\"]\n block {\n range = \"192.0.2.0/33\"\n }", "range"},
		{"virtplane_image\" \"x\" {\n name = \"i\"\n source = \"relative.qcow2\"", "source"},
		{"virtplane_vm\" \"x\" {\n name = \"v\"\n cluster_id = \"c\"\n image_id = \"i\"\n pool_id = \"p\"\n cpus = 0\n memory_mib = 1024\n disk_gib = 1", "cpus"},
		{"virtplane_vm\" \"x\" {\n name = \"v\"\n cluster_id = \"c\"\n image_id = \"i\"\n pool_id = \"p\"\n cpus = 1\n memory_mib = 1024\n disk_gib = 1\n ssh_keys = [\"not a key\"]", "ssh_keys"},
		{"virtplane_token\" \"x\" {\n name = \"t\"\n ttl = \"forever\"", "ttl"},
		{"virtplane_vm\" \"x\" {\n name = \"v\"\n cluster_id = \"c\"\n image_id = \"i\"\n pool_id = \"p\"\n cpus = 1\n memory_mib = 1024\n disk_gib = 1\n address = \"192.0.2.300\"", "address"},
		{"virtplane_vm\" \"x\" {\n name = \"v\"\n cluster_id = \"c\"\n image_id = \"i\"\n pool_id = \"p\"\n cpus = 1\n memory_mib = 1024\n disk_gib = 1\n limits = { block_in_ports = [\"70000/tcp\"] }", "70000/tcp"},
		{"virtplane_ip_pool\" \"x\" {\n name = \"p\"\n cluster_ids = [\"c\"]\n block {\n range = \"192.0.2.0/28\"\n reserved = [\"192.0.2.99\"]\n }", "192.0.2.99"},
		{"virtplane_ip_pool\" \"x\" {\n name = \"p\"\n cluster_ids = [\"c\"]\n block {\n range = \"192.0.2.0/28\"\n excluded = [\"not-an-address\"]\n }", "excluded"},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{Config: e.provider() + "resource \"" + c.cfg + "\n}\n", PlanOnly: true,
			ExpectError: regexp.MustCompile(`(?s)Error: Invalid.*with ` + strings.SplitN(c.cfg, "\"", 2)[0] + `\.x.*` + regexp.QuoteMeta(c.want))})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: e.factories(), Steps: steps})
	// Nothing reached the daemon.
	require.NoError(t, e.checkNothingLeft(nil))
}

func oneVM(extra, vmExtra string) string {
	return infra + extra + `
resource "virtplane_vm" "db" {
  name       = "db"
  cluster_id = virtplane_cluster.fra1.id
  image_id   = virtplane_image.debian.id
  pool_id    = virtplane_ip_pool.public.id
  cpus       = 2
  memory_mib = 2048
` + vmExtra + `
  depends_on = [virtplane_node.n]
}
`
}

// TestAccInPlace: what the API can change is changed in place (cluster
// settings, node maintenance, pool blocks, a VM's limits, power state and
// disk growth); a smaller disk is refused at plan time; a VM deleted behind
// Terraform's back is planned again.
func TestAccInPlace(t *testing.T) {
	e := newAccEnv(t)
	var dbID string
	before := oneVM("", "  disk_gib = 10\n  disk {\n    size_gib = 5\n  }\n")
	after := strings.NewReplacer(
		`cpu_overcommit = 4`, `cpu_overcommit = 4
  max_vms        = 50`,
		`disk_gib   = 2000
}`, `disk_gib   = 2000
  maintenance = count.index == 1
}`,
		`    gateway = "192.0.2.1"
  }`, `    gateway = "192.0.2.1"
  }
  block {
    range = "198.51.100.10-198.51.100.20"
  }`,
	).Replace(oneVM("", "  disk_gib = 20\n  running = false\n  limits = { net_mbit = 50 }\n"+
		"  disk {\n    size_gib = 8\n  }\n  disk {\n    size_gib = 3\n    storage  = \"fast\"\n  }\n"))
	update := func(addrs ...string) []plancheck.PlanCheck {
		var c []plancheck.PlanCheck
		for _, a := range addrs {
			c = append(c, plancheck.ExpectResourceAction(a, plancheck.ResourceActionUpdate))
		}
		return c
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkNothingLeft,
		Steps: []resource.TestStep{
			{Config: e.provider() + before, Check: func(st *terraform.State) error {
				dbID = st.RootModule().Resources["virtplane_vm.db"].Primary.ID
				return nil
			}},
			{
				Config: e.provider() + after,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             update("virtplane_cluster.fra1", "virtplane_node.n[1]", "virtplane_ip_pool.public", "virtplane_vm.db"),
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					ctx := context.Background()
					nodes, err := e.c.ListNodes(ctx, client.NodeListOptions{})
					if err != nil {
						return err
					}
					for _, n := range nodes.Items {
						if n.Maintenance != (n.Name == "n2") {
							return fmt.Errorf("node %s maintenance %v", n.Name, n.Maintenance)
						}
					}
					pools, _ := e.c.ListPools(ctx, client.ListOptions{})
					if len(pools.Items) != 1 || len(pools.Items[0].Blocks) != 2 {
						return fmt.Errorf("pools %+v: want one with two blocks", pools.Items)
					}
					vms, _ := e.c.ListVMs(ctx, client.VMListOptions{})
					if len(vms.Items) != 1 || vms.Items[0].State != "stopped" || vms.Items[0].DiskGiB != 20 || vms.Items[0].Limits.NetMbit != 50 {
						return fmt.Errorf("vms %+v: want db stopped, 20 GiB, 50 Mbit/s", vms.Items)
					}
					if d := vms.Items[0].Disks; len(d) != 2 || d[0].Target != "vdb" || d[0].SizeGiB != 8 || d[1].Target != "vdc" || d[1].SizeGiB != 3 || d[1].Storage != "fast" {
						return fmt.Errorf("data disks %+v: want vdb grown to 8 GiB, vdc of 3 GiB on fast", d)
					}
					if vms.Items[0].Storage != "bulk" || vms.Items[0].Disks[0].Storage != "bulk" {
						return fmt.Errorf("vm %+v: want root and vdb on the default storage bulk", vms.Items[0])
					}
					cls, err := e.c.ListClusters(ctx, client.ListOptions{})
					if err != nil || len(cls.Items) != 1 {
						return fmt.Errorf("clusters %+v: %v", cls.Items, err)
					}
					if st := cls.Items[0].Storages; len(st) != 3 || !st[1].Default || st[1].DiskOvercommit != 2 || st[2].IsEnabled() {
						return fmt.Errorf("storages %+v: want bulk the default with overcommit 2, old disabled", st)
					}
					if vms.Items[0].ID != dbID {
						return fmt.Errorf("vm db was replaced: %s, was %s", vms.Items[0].ID, dbID)
					}
					return nil
				},
			},
			{
				Config:      e.provider() + strings.Replace(after, "disk_gib = 20", "disk_gib = 5", 1),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Disks only grow`),
			},
			{
				Config:      e.provider() + strings.Replace(after, "size_gib = 8", "size_gib = 6", 1),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Disks only grow`),
			},
			{
				Config:      e.provider() + strings.Replace(after, `storage  = "fast"`, `storage  = "slow"`, 1),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`A data disk does not change storage`),
			},
			{
				// The last data disk removed: detached in place.
				Config: e.provider() + strings.Replace(after, "  disk {\n    size_gib = 3\n    storage  = \"fast\"\n  }\n", "", 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             update("virtplane_vm.db"),
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					vms, err := e.c.ListVMs(context.Background(), client.VMListOptions{})
					if err != nil {
						return err
					}
					if len(vms.Items) != 1 || len(vms.Items[0].Disks) != 1 || vms.Items[0].Disks[0].Target != "vdb" {
						return fmt.Errorf("vms %+v: want db with vdb alone", vms.Items)
					}
					return nil
				},
			},
			{
				// Deleted behind Terraform's back: planned and made again.
				PreConfig: func() {
					ctx := context.Background()
					vms, err := e.c.ListVMs(ctx, client.VMListOptions{})
					require.NoError(t, err)
					require.Len(t, vms.Items, 1)
					tv, err := e.c.DeleteVM(ctx, vms.Items[0].ID)
					require.NoError(t, err)
					require.NoError(t, e.c.Task(tv).Wait(ctx))
				},
				Config: e.provider() + after,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("virtplane_vm.db", plancheck.ResourceActionCreate)},
				},
			},
		},
	})
}

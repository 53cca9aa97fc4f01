// Command terraform-provider-virtplane is the Terraform provider of
// virtplane: clusters, nodes, IP pools, images, VMs, users and tokens of a
// virtplaned daemon, through its Go client.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/virtplane/virtplane/terraform-provider-virtplane/internal/provider"
)

// version is set at release builds (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	debug := flag.Bool("debug", false, "run the provider for a debugger (prints TF_REATTACH_PROVIDERS)")
	flag.Parse()
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/virtplane/virtplane",
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}

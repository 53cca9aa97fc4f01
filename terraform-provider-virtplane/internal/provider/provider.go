package provider

import (
	"context"
	"os"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane/daemon/client"
)

// New returns the provider factory.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &virtplaneProvider{version: version} }
}

type virtplaneProvider struct{ version string }

type providerModel struct {
	Endpoint types.String `tfsdk:"endpoint"`
	Token    types.String `tfsdk:"token"`
	Poll     types.String `tfsdk:"poll_interval"`
}

// deps is what resources get from Configure.
type deps struct {
	c *client.Client
}

func (p *virtplaneProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "virtplane"
	resp.Version = p.version
}

func (p *virtplaneProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Manages the infrastructure of a virtplane daemon (virtplaned).",
		Attributes: map[string]schema.Attribute{
			"endpoint": schema.StringAttribute{Optional: true, Description: "URL of the daemon (default $VIRTPLANE_ENDPOINT)."},
			"token":    schema.StringAttribute{Optional: true, Sensitive: true, Description: "API token (default $VIRTPLANE_TOKEN)."},
			"poll_interval": schema.StringAttribute{Optional: true,
				Description: "How often the provider reads a task it waits for, as a Go duration (default 250ms)."},
		},
	}
}

func (p *virtplaneProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	endpoint, token := os.Getenv("VIRTPLANE_ENDPOINT"), os.Getenv("VIRTPLANE_TOKEN")
	if !m.Endpoint.IsNull() && !m.Endpoint.IsUnknown() {
		endpoint = m.Endpoint.ValueString()
	}
	if !m.Token.IsNull() && !m.Token.IsUnknown() {
		token = m.Token.ValueString()
	}
	if endpoint == "" || token == "" {
		resp.Diagnostics.AddError("virtplane provider is not configured", "set endpoint and token (or VIRTPLANE_ENDPOINT and VIRTPLANE_TOKEN)")
		return
	}
	c := client.New(endpoint, token, client.WithUserAgent("terraform-provider-virtplane/"+p.version))
	c.Poll = 250 * time.Millisecond
	if !m.Poll.IsNull() && !m.Poll.IsUnknown() {
		d, err := time.ParseDuration(m.Poll.ValueString())
		if err != nil || d <= 0 {
			resp.Diagnostics.AddError("poll_interval", "a positive Go duration, e.g. 250ms")
			return
		}
		c.Poll = d
	}
	d := &deps{c: c}
	resp.ResourceData = d
	resp.DataSourceData = d
}

func (p *virtplaneProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		newClusterResource, newNodeResource, newPoolResource, newImageResource, newVMResource, newUserResource, newTokenResource,
	}
}

func (p *virtplaneProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		newClusterDataSource, newNodeDataSource, newPoolDataSource, newImageDataSource, newVMDataSource,
	}
}

package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/datasourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/model"
)

// lookup is a data source that finds one object by ID or name.
type lookup[T any] struct {
	base
	kind   string
	attrs  map[string]schema.Attribute
	get    func(*client.Client, context.Context, string) (T, error)
	list   func(*client.Client, context.Context, client.ListOptions) (client.Page[T], error)
	idOf   func(T) string
	nameOf func(T) string
	fill   func(T) map[string]any
}

func (l *lookup[T]) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_" + l.kind
}

func (l *lookup[T]) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	l.configure(req.ProviderData, &resp.Diagnostics)
}

func (l *lookup[T]) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := map[string]schema.Attribute{
		"id":   schema.StringAttribute{Optional: true, Computed: true, Description: "ID to look up (or give name)."},
		"name": schema.StringAttribute{Optional: true, Computed: true, Description: "Name to look up (or give id)."},
	}
	for k, v := range l.attrs {
		attrs[k] = v
	}
	resp.Schema = schema.Schema{Description: "Looks up a " + l.kind + " by ID or name.", Attributes: attrs}
}

func (l *lookup[T]) ConfigValidators(context.Context) []datasource.ConfigValidator {
	return []datasource.ConfigValidator{datasourcevalidator.ExactlyOneOf(path.MatchRoot("id"), path.MatchRoot("name"))}
}

func (l *lookup[T]) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var id, name types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("id"), &id)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("name"), &name)...)
	if resp.Diagnostics.HasError() {
		return
	}
	obj, err := l.find(ctx, id.ValueString(), name.ValueString())
	if err != nil {
		addError(&resp.Diagnostics, "Looking up "+l.kind, err)
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), l.idOf(obj))...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), l.nameOf(obj))...)
	for k, v := range l.fill(obj) {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(k), v)...)
	}
}

func (l *lookup[T]) find(ctx context.Context, id, name string) (T, error) {
	var zero T
	if id != "" {
		return l.get(l.c, ctx, id)
	}
	o := client.ListOptions{Limit: 1000}
	for {
		p, err := l.list(l.c, ctx, o)
		if err != nil {
			return zero, err
		}
		for _, it := range p.Items {
			if l.nameOf(it) == name {
				return it, nil
			}
		}
		if p.Next == "" {
			return zero, virtplane.Errorf(virtplane.ErrNotFound, "%s %q", l.kind, name)
		}
		o.After = p.Next
	}
}

func computedString(desc string) schema.StringAttribute {
	return schema.StringAttribute{Computed: true, Description: desc}
}

func newClusterDataSource() datasource.DataSource {
	return &lookup[model.Cluster]{kind: "cluster",
		attrs: map[string]schema.Attribute{"virt_type": computedString("kvm or lxd"), "network_mode": computedString("bridge, routed or vxlan")},
		get:   (*client.Client).GetCluster, list: (*client.Client).ListClusters,
		idOf: func(c model.Cluster) string { return c.ID }, nameOf: func(c model.Cluster) string { return c.Name },
		fill: func(c model.Cluster) map[string]any {
			return map[string]any{"virt_type": c.VirtType, "network_mode": c.NetworkMode}
		}}
}

func newNodeDataSource() datasource.DataSource {
	return &lookup[model.Node]{kind: "node",
		attrs: map[string]schema.Attribute{"cluster_id": computedString("cluster"), "address": computedString("address"), "state": computedString("state")},
		get:   (*client.Client).GetNode,
		list: func(c *client.Client, ctx context.Context, o client.ListOptions) (client.Page[model.Node], error) {
			return c.ListNodes(ctx, client.NodeListOptions{ListOptions: o})
		},
		idOf: func(n model.Node) string { return n.ID }, nameOf: func(n model.Node) string { return n.Name },
		fill: func(n model.Node) map[string]any {
			return map[string]any{"cluster_id": n.ClusterID, "address": n.Address, "state": n.State}
		}}
}

func newPoolDataSource() datasource.DataSource {
	return &lookup[model.IPPool]{kind: "ip_pool",
		attrs: map[string]schema.Attribute{"cluster_ids": schema.ListAttribute{Computed: true, ElementType: types.StringType}},
		get:   (*client.Client).GetPool, list: (*client.Client).ListPools,
		idOf: func(p model.IPPool) string { return p.ID }, nameOf: func(p model.IPPool) string { return p.Name },
		fill: func(p model.IPPool) map[string]any { return map[string]any{"cluster_ids": p.ClusterIDs} }}
}

func newImageDataSource() datasource.DataSource {
	return &lookup[model.Image]{kind: "image",
		attrs: map[string]schema.Attribute{"state": computedString("state"), "source": computedString("source"), "format": computedString("format")},
		get:   (*client.Client).GetImage, list: (*client.Client).ListImages,
		idOf: func(i model.Image) string { return i.ID }, nameOf: func(i model.Image) string { return i.Name },
		fill: func(i model.Image) map[string]any {
			return map[string]any{"state": i.State, "source": i.Source, "format": i.Format}
		}}
}

func newVMDataSource() datasource.DataSource {
	return &lookup[model.VM]{kind: "vm",
		attrs: map[string]schema.Attribute{"state": computedString("state"), "node_id": computedString("node"),
			"cpus": schema.Int64Attribute{Computed: true}, "memory_mib": schema.Int64Attribute{Computed: true},
			"addresses": schema.ListAttribute{Computed: true, ElementType: types.StringType}},
		get: (*client.Client).GetVM,
		list: func(c *client.Client, ctx context.Context, o client.ListOptions) (client.Page[model.VM], error) {
			return c.ListVMs(ctx, client.VMListOptions{ListOptions: o})
		},
		idOf: func(v model.VM) string { return v.ID }, nameOf: func(v model.VM) string { return v.Name },
		fill: func(v model.VM) map[string]any {
			return map[string]any{"state": v.State, "node_id": v.NodeID, "cpus": int64(v.CPUs), "memory_mib": v.MemoryMiB, "addresses": v.Addresses}
		}}
}

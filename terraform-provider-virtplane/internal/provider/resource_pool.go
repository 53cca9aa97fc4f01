package provider

import (
	"context"
	"net/netip"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

type poolResource struct{ base }

func newPoolResource() resource.Resource { return &poolResource{} }

type blockModel struct {
	Range   types.String `tfsdk:"range"`
	Gateway types.String `tfsdk:"gateway"`
}

type poolModel struct {
	ID         types.String   `tfsdk:"id"`
	Name       types.String   `tfsdk:"name"`
	ClusterIDs []types.String `tfsdk:"cluster_ids"`
	Blocks     []blockModel   `tfsdk:"block"`
}

func (r *poolResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_ip_pool"
}

// addressRange accepts a CIDR or a first-last range.
type addressRange struct{}

func (addressRange) Description(context.Context) string {
	return "a CIDR (192.0.2.0/24) or first-last range"
}
func (v addressRange) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }
func (v addressRange) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if _, err := netip.ParsePrefix(s); err == nil {
		return
	}
	first, last, ok := strings.Cut(s, "-")
	a, e1 := netip.ParseAddr(strings.TrimSpace(first))
	b, e2 := netip.ParseAddr(strings.TrimSpace(last))
	if !ok || e1 != nil || e2 != nil || a.Is4() != b.Is4() || b.Less(a) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid address range", "range "+s+": want "+v.Description(ctx))
	}
}

// ipAddress accepts an IP address.
type ipAddress struct{}

func (ipAddress) Description(context.Context) string               { return "an IP address" }
func (v ipAddress) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }
func (v ipAddress) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := netip.ParseAddr(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid IP address", err.Error())
	}
}

func (r *poolResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "An IP pool: blocks of addresses the VMs of its clusters take theirs from. Blocks are added and removed in place (a block in use cannot go).",
		Attributes: map[string]schema.Attribute{
			"id":   idAttribute(),
			"name": nameAttribute("Pool", true),
			"cluster_ids": schema.SetAttribute{Required: true, ElementType: types.StringType,
				Description:   "Clusters whose VMs take addresses from the pool; changing them replaces the pool.",
				Validators:    []validator.Set{setvalidator.SizeAtLeast(1)},
				PlanModifiers: []planmodifier.Set{setplanmodifier.RequiresReplace()}},
		},
		Blocks: map[string]schema.Block{
			"block": schema.SetNestedBlock{
				Description: "A block of addresses.",
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"range":   schema.StringAttribute{Required: true, Validators: []validator.String{addressRange{}}},
					"gateway": schema.StringAttribute{Optional: true, Validators: []validator.String{ipAddress{}}},
				}},
			},
		},
	}
}

func poolState(p model.IPPool) poolModel {
	m := poolModel{ID: types.StringValue(p.ID), Name: types.StringValue(p.Name), ClusterIDs: stringList(p.ClusterIDs)}
	for _, b := range p.Blocks {
		m.Blocks = append(m.Blocks, blockModel{Range: types.StringValue(b.Range), Gateway: strOrNull(b.Gateway)})
	}
	return m
}

func (b blockModel) key() string { return b.Range.ValueString() + "|" + b.Gateway.ValueString() }

func (r *poolResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan poolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	body := api.PoolBody{Name: plan.Name.ValueString(), ClusterIDs: plainStrings(plan.ClusterIDs)}
	for _, b := range plan.Blocks {
		body.Blocks = append(body.Blocks, api.BlockBody{Range: b.Range.ValueString(), Gateway: b.Gateway.ValueString()})
	}
	p, err := r.c.CreatePool(ctx, body)
	if err != nil {
		addError(&resp.Diagnostics, "Creating IP pool "+plan.Name.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, poolState(p))...)
}

func (r *poolResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var st poolModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.c.GetPool(ctx, st.ID.ValueString())
	if notFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, "Reading IP pool "+st.ID.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, poolState(p))...)
}

// Update adds the blocks the plan has and the pool lacks, then removes the
// blocks the plan no longer has.
func (r *poolResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan poolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := plan.ID.ValueString()
	p, err := r.c.GetPool(ctx, id)
	if err != nil {
		addError(&resp.Diagnostics, "Reading IP pool "+id, err)
		return
	}
	want := map[string]bool{}
	for _, b := range plan.Blocks {
		want[b.key()] = true
	}
	have := map[string]string{} // key -> block ID
	for _, b := range p.Blocks {
		have[blockModel{Range: types.StringValue(b.Range), Gateway: strOrNull(b.Gateway)}.key()] = b.ID
	}
	for _, b := range plan.Blocks {
		if _, ok := have[b.key()]; ok {
			continue
		}
		if p, err = r.c.AddPoolBlock(ctx, id, api.BlockBody{Range: b.Range.ValueString(), Gateway: b.Gateway.ValueString()}); err != nil {
			resp.Diagnostics.Append(resp.State.Set(ctx, poolState(p))...)
			addError(&resp.Diagnostics, "Adding block "+b.Range.ValueString()+" to IP pool "+plan.Name.ValueString(), err)
			return
		}
	}
	for key, blockID := range have {
		if want[key] {
			continue
		}
		if err := r.c.RemovePoolBlock(ctx, id, blockID); err != nil {
			addError(&resp.Diagnostics, "Removing block "+strings.Split(key, "|")[0]+" from IP pool "+plan.Name.ValueString(), err)
			break
		}
	}
	if p, err = r.c.GetPool(ctx, id); err != nil {
		addError(&resp.Diagnostics, "Reading IP pool "+id, err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, poolState(p))...)
}

func (r *poolResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var st poolModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Addresses of VMs being deleted in the same destroy are released when
	// their tasks end.
	err := retryConflict(ctx, func() error { return r.c.DeletePool(ctx, st.ID.ValueString()) })
	if err != nil && !notFound(err) {
		addError(&resp.Diagnostics, "Deleting IP pool "+st.Name.ValueString(), err)
	}
}

func (r *poolResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

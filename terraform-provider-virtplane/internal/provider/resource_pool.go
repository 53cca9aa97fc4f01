package provider

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
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
	"github.com/virtplane/virtplane/network/ipam"
)

type poolResource struct{ base }

func newPoolResource() resource.Resource { return &poolResource{} }

type blockModel struct {
	Range         types.String   `tfsdk:"range"`
	Gateway       types.String   `tfsdk:"gateway"`
	Excluded      []types.String `tfsdk:"excluded"`
	Reserved      []types.String `tfsdk:"reserved"`
	Family        types.String   `tfsdk:"family"`
	ExcludedExtra types.List     `tfsdk:"excluded_extra"`
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
					"excluded": schema.ListAttribute{Optional: true, ElementType: types.StringType,
						Description: "Addresses, CIDRs or first-last ranges inside the range that are never handed out (a router's second address, a host's own). " +
							"A change re-creates the block in place (removed, then added again; the pool stays): refused by the API while a VM holds an address of the block, and then nothing changes. " +
							"Exclusions the daemon adds itself (a DNSBL check's exclude_listed) are not shown here but in excluded_extra, and cause no diff.",
						Validators: []validator.List{listvalidator.SizeBetween(1, 1024), listvalidator.ValueStringsAre(addressOrRange{})}},
					"reserved": schema.ListAttribute{Optional: true, ElementType: types.StringType,
						Description: "Addresses inside the range handed out only to a VM create that asks for them (virtplane_vm's address). A change re-creates the block in place, as for excluded.",
						Validators:  []validator.List{listvalidator.SizeBetween(1, 1024), listvalidator.ValueStringsAre(ipAddress{})}},
					"family": schema.StringAttribute{Computed: true, Description: "The address family of the range: ipv4 or ipv6."},
					"excluded_extra": schema.ListAttribute{Computed: true, ElementType: types.StringType,
						Description: "Exclusions the block has beyond excluded: added by the daemon (a DNSBL check with exclude_listed) or outside Terraform. Kept when the block is re-created."},
				}},
			},
		},
	}
}

// poolState is the state of p; prior (the state or plan before) tells
// the configured exclusions of a block from those the daemon added: an
// exclusion the prior block of the same range had is configured, another
// is extra. A block new to the state (an import) has all configured.
func poolState(p model.IPPool, prior poolModel) poolModel {
	m := poolModel{ID: types.StringValue(p.ID), Name: types.StringValue(p.Name), ClusterIDs: stringList(p.ClusterIDs)}
	for _, b := range p.Blocks {
		bm := blockModel{Range: types.StringValue(b.Range), Gateway: strOrNull(b.Gateway), Family: types.StringValue(b.Family),
			Reserved: nullIfEmpty(b.Reserved)}
		pb, known := prior.block(b.Range)
		var conf []string
		extra := []string{} // known, never null: no unknown in a plan
		for _, e := range b.Excluded {
			if !known || slices.Contains(plainStrings(pb.Excluded), e) {
				conf = append(conf, e)
			} else {
				extra = append(extra, e)
			}
		}
		bm.Excluded, bm.ExcludedExtra = nullIfEmpty(conf), listValue(extra)
		m.Blocks = append(m.Blocks, bm)
	}
	return m
}

func (m poolModel) block(rng string) (blockModel, bool) {
	for _, b := range m.Blocks {
		if b.Range.ValueString() == rng {
			return b, true
		}
	}
	return blockModel{}, false
}

func nullIfEmpty(l []string) []types.String {
	if len(l) == 0 {
		return nil
	}
	return stringList(l)
}

// same reports whether b, as configured, is the block as is.
func (b blockModel) same(o model.IPBlock, prior poolModel) bool {
	st := poolState(model.IPPool{Blocks: []model.IPBlock{o}}, prior).Blocks[0]
	return b.Gateway.ValueString() == o.Gateway && slices.Equal(plainStrings(b.Excluded), plainStrings(st.Excluded)) &&
		slices.Equal(plainStrings(b.Reserved), plainStrings(st.Reserved))
}

func (b blockModel) body() api.BlockBody {
	return api.BlockBody{Range: b.Range.ValueString(), Gateway: b.Gateway.ValueString(), Excluded: plainOrNil(b.Excluded), Reserved: plainOrNil(b.Reserved)}
}

func plainOrNil(l []types.String) []string {
	if len(l) == 0 {
		return nil
	}
	return plainStrings(l)
}

// addressOrRange accepts an address, a CIDR or a first-last range.
type addressOrRange struct{}

func (addressOrRange) Description(context.Context) string {
	return "an IP address, a CIDR or a first-last range"
}
func (v addressOrRange) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }
func (v addressOrRange) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := netip.ParseAddr(req.ConfigValue.ValueString()); err == nil {
		return
	}
	addressRange{}.ValidateString(ctx, req, resp)
}

// ValidateConfig checks each block as the API will (gateway, exclusions
// and reservations inside the range), at plan time.
func (r *poolResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var blocks []blockModel
	if d := req.Config.GetAttribute(ctx, path.Root("block"), &blocks); d.HasError() {
		return // unknown parts: checked at apply
	}
	for i, b := range blocks {
		if b.Range.IsUnknown() || b.Gateway.IsUnknown() || anyUnknown(b.Excluded) || anyUnknown(b.Reserved) {
			continue
		}
		if _, err := ipam.ParseBlock(ipam.BlockSpec{ID: b.Range.ValueString(), Range: b.Range.ValueString(), Gateway: b.Gateway.ValueString(),
			Excluded: plainOrNil(b.Excluded), Reserved: plainOrNil(b.Reserved)}); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("block"), fmt.Sprintf("Invalid block %d", i+1), err.Error())
		}
	}
}

func anyUnknown(l []types.String) bool {
	for _, v := range l {
		if v.IsUnknown() {
			return true
		}
	}
	return false
}

func (r *poolResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan poolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	body := api.PoolBody{Name: plan.Name.ValueString(), ClusterIDs: plainStrings(plan.ClusterIDs)}
	for _, b := range plan.Blocks {
		body.Blocks = append(body.Blocks, b.body())
	}
	p, err := r.c.CreatePool(ctx, body)
	if err != nil {
		addError(&resp.Diagnostics, "Creating IP pool "+plan.Name.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, poolState(p, plan))...)
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
	resp.Diagnostics.Append(resp.State.Set(ctx, poolState(p, st))...)
}

// Update changes the blocks in place: a block whose gateway, exclusions
// or reservations changed is removed and added again (the API has no
// change of a block; it refuses to remove one a VM holds an address of),
// keeping the exclusions the daemon added; then the blocks the plan adds
// are added, then the ones it dropped removed.
func (r *poolResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, st poolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := plan.ID.ValueString()
	p, err := r.c.GetPool(ctx, id)
	if err != nil {
		addError(&resp.Diagnostics, "Reading IP pool "+id, err)
		return
	}
	// rec is what the state's exclusions are told by: the state's blocks,
	// each replaced by the plan's once done.
	rec := poolModel{Blocks: slices.Clone(st.Blocks)}
	done := func(b blockModel) {
		for i := range rec.Blocks {
			if rec.Blocks[i].Range.Equal(b.Range) {
				rec.Blocks[i] = b
				return
			}
		}
		rec.Blocks = append(rec.Blocks, b)
	}
	fail := func(summary string, err error) {
		if q, gerr := r.c.GetPool(ctx, id); gerr == nil {
			p = q
		}
		resp.Diagnostics.Append(resp.State.Set(ctx, poolState(p, rec))...)
		addError(&resp.Diagnostics, summary, err)
	}
	current := map[string]model.IPBlock{}
	for _, o := range p.Blocks {
		current[o.Range] = o
	}
	name := plan.Name.ValueString()
	for _, b := range plan.Blocks {
		o, ok := current[b.Range.ValueString()]
		if !ok || b.same(o, st) {
			continue
		}
		body := b.body()
		for _, e := range o.Excluded {
			if sb, ok := st.block(o.Range); ok && !slices.Contains(plainStrings(sb.Excluded), e) && !slices.Contains(body.Excluded, e) {
				body.Excluded = append(body.Excluded, e) // the daemon's, kept
			}
		}
		if err := r.c.RemovePoolBlock(ctx, id, o.ID); err != nil {
			fail("Re-creating block "+o.Range+" of IP pool "+name+" (its gateway, excluded or reserved changed): removing it", err)
			return
		}
		if _, err := r.c.AddPoolBlock(ctx, id, body); err != nil {
			// Put the block back as it was.
			_, _ = r.c.AddPoolBlock(ctx, id, api.BlockBody{Range: o.Range, Gateway: o.Gateway, Excluded: o.Excluded, Reserved: o.Reserved})
			fail("Re-creating block "+o.Range+" of IP pool "+name+": adding it again", err)
			return
		}
		done(b)
	}
	for _, b := range plan.Blocks {
		if _, ok := current[b.Range.ValueString()]; ok {
			continue
		}
		if _, err := r.c.AddPoolBlock(ctx, id, b.body()); err != nil {
			fail("Adding block "+b.Range.ValueString()+" to IP pool "+name, err)
			return
		}
		done(b)
	}
	for _, o := range p.Blocks {
		if _, ok := plan.block(o.Range); ok {
			continue
		}
		if err := r.c.RemovePoolBlock(ctx, id, o.ID); err != nil {
			fail("Removing block "+o.Range+" from IP pool "+name, err)
			return
		}
	}
	if p, err = r.c.GetPool(ctx, id); err != nil {
		addError(&resp.Diagnostics, "Reading IP pool "+id, err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, poolState(p, rec))...)
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

package provider

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

type nodeResource struct{ base }

func newNodeResource() resource.Resource { return &nodeResource{} }

type nodeModel struct {
	ID          types.String `tfsdk:"id"`
	ClusterID   types.String `tfsdk:"cluster_id"`
	Name        types.String `tfsdk:"name"`
	Address     types.String `tfsdk:"address"`
	Cores       types.Int64  `tfsdk:"cores"`
	MemoryMiB   types.Int64  `tfsdk:"memory_mib"`
	DiskGiB     types.Int64  `tfsdk:"disk_gib"`
	VTEPAddress types.String `tfsdk:"vtep_address"`
	Maintenance types.Bool   `tfsdk:"maintenance"`
	State       types.String `tfsdk:"state"`
}

func (r *nodeResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_node"
}

// nodeAddress accepts the address forms the daemon knows.
type nodeAddress struct{}

func (nodeAddress) Description(context.Context) string {
	return "local, sim, qemu+unix:///system?socket=PATH or ssh://USER@HOST[:PORT][?...]"
}
func (v nodeAddress) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }
func (v nodeAddress) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	a := req.ConfigValue.ValueString()
	if a == "local" || a == "sim" {
		return
	}
	if strings.HasPrefix(a, "qemu+unix://") {
		if _, _, err := model.ParseLibvirtAddress("address", a); err != nil {
			resp.Diagnostics.AddAttributeError(req.Path, "Invalid node address", err.Error())
		}
		return
	}
	if strings.HasPrefix(a, "ssh://") {
		if _, _, err := model.ParseSSHAddress("address", a); err != nil {
			resp.Diagnostics.AddAttributeError(req.Path, "Invalid node address", err.Error())
		}
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid node address", "address "+a+": want "+v.Description(ctx))
}

func (r *nodeResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replaceInt := []planmodifier.Int64{int64planmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		Description: "A node of a cluster. maintenance and vtep_address change in place; the rest replaces the node (the API cannot change them).",
		Attributes: map[string]schema.Attribute{
			"id": idAttribute(),
			"cluster_id": schema.StringAttribute{Required: true, Description: "Cluster of the node.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"name": nameAttribute("Node", true),
			"address": schema.StringAttribute{Required: true, Description: "local (this host's libvirtd), sim (a simulated node), qemu+unix:///system?socket=PATH or ssh://USER@HOST.",
				Validators: []validator.String{nodeAddress{}}, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"cores":      schema.Int64Attribute{Required: true, Validators: []validator.Int64{int64validator.Between(1, 4096)}, PlanModifiers: replaceInt},
			"memory_mib": schema.Int64Attribute{Required: true, Validators: []validator.Int64{int64validator.AtLeast(256)}, PlanModifiers: replaceInt},
			"disk_gib":   schema.Int64Attribute{Required: true, Validators: []validator.Int64{int64validator.AtLeast(1)}, PlanModifiers: replaceInt},
			"vtep_address": schema.StringAttribute{Optional: true, Description: "VxLAN underlay address (vxlan clusters); changes in place while the node hosts no VM.",
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)}},
			"maintenance": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				Description: "In maintenance a node takes no new VMs."},
			"state": schema.StringAttribute{Computed: true, Description: "active, maintenance or unreachable."},
		},
	}
}

func nodeState(n model.Node) nodeModel {
	return nodeModel{ID: types.StringValue(n.ID), ClusterID: types.StringValue(n.ClusterID), Name: types.StringValue(n.Name),
		Address: types.StringValue(n.Address), Cores: types.Int64Value(int64(n.Cores)), MemoryMiB: types.Int64Value(n.MemoryMiB),
		DiskGiB: types.Int64Value(n.DiskGiB), VTEPAddress: strOrNull(n.VTEPAddress), Maintenance: types.BoolValue(n.Maintenance),
		State: types.StringValue(n.State)}
}

func (r *nodeResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan nodeModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	n, err := r.c.AddNode(ctx, api.NodeBody{ClusterID: plan.ClusterID.ValueString(), Name: plan.Name.ValueString(), Address: plan.Address.ValueString(),
		Cores: int(plan.Cores.ValueInt64()), MemoryMiB: plan.MemoryMiB.ValueInt64(), DiskGiB: plan.DiskGiB.ValueInt64(), VTEPAddress: plan.VTEPAddress.ValueString()})
	if err != nil {
		addError(&resp.Diagnostics, "Adding node "+plan.Name.ValueString(), err)
		return
	}
	if plan.Maintenance.ValueBool() {
		if n, err = r.c.SetNodeMaintenance(ctx, n.ID, true); err != nil {
			// The node exists: keep it in the state so it is not lost.
			resp.Diagnostics.Append(resp.State.Set(ctx, nodeState(n))...)
			addError(&resp.Diagnostics, "Putting node "+plan.Name.ValueString()+" into maintenance", err)
			return
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, nodeState(n))...)
}

func (r *nodeResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var st nodeModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	n, err := r.c.GetNode(ctx, st.ID.ValueString())
	if notFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, "Reading node "+st.ID.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, nodeState(n))...)
}

func (r *nodeResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, st nodeModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := st.ID.ValueString()
	n, err := r.c.GetNode(ctx, id)
	if err == nil && !plan.VTEPAddress.Equal(st.VTEPAddress) {
		n, err = r.c.SetNodeVTEP(ctx, id, plan.VTEPAddress.ValueString())
	}
	if err == nil && plan.Maintenance.ValueBool() != st.Maintenance.ValueBool() {
		n, err = r.c.SetNodeMaintenance(ctx, id, plan.Maintenance.ValueBool())
	}
	if err != nil {
		addError(&resp.Diagnostics, "Updating node "+plan.Name.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, nodeState(n))...)
}

func (r *nodeResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var st nodeModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// VMs do not depend on nodes in a configuration: the same destroy may
	// still be deleting the node's VMs, which the API answers as a conflict.
	err := retryConflict(ctx, func() error { return r.c.RemoveNode(ctx, st.ID.ValueString()) })
	if err != nil && !notFound(err) {
		addError(&resp.Diagnostics, "Removing node "+st.Name.ValueString(), err)
	}
}

func (r *nodeResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

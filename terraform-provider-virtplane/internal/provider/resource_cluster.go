package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/float64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

type clusterResource struct{ base }

func newClusterResource() resource.Resource { return &clusterResource{} }

type storageModel struct {
	Name    types.String            `tfsdk:"name"`
	Driver  types.String            `tfsdk:"driver"`
	Path    types.String            `tfsdk:"path"`
	Options map[string]types.String `tfsdk:"options"`
	Tags    []types.String          `tfsdk:"tags"`
	Default types.Bool              `tfsdk:"default"`
	Enabled types.Bool              `tfsdk:"enabled"`
	// DiskOvercommit is null when the cluster's holds.
	DiskOvercommit types.Float64 `tfsdk:"disk_overcommit"`
}

type clusterModel struct {
	ID             types.String   `tfsdk:"id"`
	Name           types.String   `tfsdk:"name"`
	VirtType       types.String   `tfsdk:"virt_type"`
	Strategy       types.String   `tfsdk:"strategy"`
	CPUOvercommit  types.Float64  `tfsdk:"cpu_overcommit"`
	RAMOvercommit  types.Float64  `tfsdk:"ram_overcommit"`
	DiskOvercommit types.Float64  `tfsdk:"disk_overcommit"`
	MaxVMs         types.Int64    `tfsdk:"max_vms"`
	MaxVMsPerNode  types.Int64    `tfsdk:"max_vms_per_node"`
	NetworkMode    types.String   `tfsdk:"network_mode"`
	Bridge         types.String   `tfsdk:"bridge"`
	VNI            types.Int64    `tfsdk:"vni"`
	Storages       []storageModel `tfsdk:"storage"`
}

func (r *clusterResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

func nameAttribute(what string, replace bool) schema.StringAttribute {
	a := schema.StringAttribute{Required: true, Description: what + " name: " + nameRule + ".",
		Validators: []validator.String{stringvalidator.RegexMatches(namePattern, nameRule)}}
	if replace {
		a.PlanModifiers = []planmodifier.String{stringplanmodifier.RequiresReplace()}
		a.Description += " Changing it replaces the object (the API cannot rename)."
	}
	return a
}

func idAttribute() schema.StringAttribute {
	return schema.StringAttribute{Computed: true, Description: "ID given by the daemon.",
		PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}}
}

func (r *clusterResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	ratio := func(desc string, max float64) schema.Float64Attribute {
		return schema.Float64Attribute{Optional: true, Computed: true, Default: float64default.StaticFloat64(1), Description: desc,
			Validators: []validator.Float64{float64validator.Between(1, max)}}
	}
	resp.Schema = schema.Schema{
		Description: "A cluster: nodes with one virtualization type and one set of placement rules. Every setting changes in place except virt_type.",
		Attributes: map[string]schema.Attribute{
			"id":   idAttribute(),
			"name": nameAttribute("Cluster", false),
			"virt_type": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("kvm"),
				Description: "kvm or lxd; changing it replaces the cluster.", Validators: []validator.String{stringvalidator.OneOf("kvm", "lxd")},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"strategy": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("even"),
				Description: "Placement: even (spread) or sequential (fill nodes in turn).", Validators: []validator.String{stringvalidator.OneOf("even", "sequential")}},
			"cpu_overcommit":  ratio("Virtual CPUs per core, 1..64.", 64),
			"ram_overcommit":  ratio("Memory overcommit, 1..8.", 8),
			"disk_overcommit": ratio("Disk overcommit, 1..16.", 16),
			"max_vms": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(0),
				Description: "VMs in the cluster at most; 0 for no limit.", Validators: []validator.Int64{int64validator.AtLeast(0)}},
			"max_vms_per_node": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(0),
				Description: "VMs per node at most; 0 for no limit.", Validators: []validator.Int64{int64validator.AtLeast(0)}},
			"network_mode": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("bridge"),
				Description: "bridge, routed or vxlan; changes only while the cluster has no VM.", Validators: []validator.String{stringvalidator.OneOf("bridge", "routed", "vxlan")}},
			"bridge": schema.StringAttribute{Optional: true, Description: "Host bridge the VMs attach to (bridge mode).",
				Validators: []validator.String{stringvalidator.LengthBetween(1, 15)}},
			"vni": schema.Int64Attribute{Optional: true, Description: "VxLAN network identifier (vxlan mode), 1..16777215.",
				Validators: []validator.Int64{int64validator.Between(1, model.MaxVNI)}},
		},
		Blocks: map[string]schema.Block{
			"storage": schema.ListNestedBlock{
				Description: "A storage of the cluster's nodes.",
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"name": schema.StringAttribute{Required: true, Validators: []validator.String{stringvalidator.RegexMatches(namePattern, nameRule)}},
					"driver": schema.StringAttribute{Required: true, Description: "file, lvm, ceph, san-iscsi or san-lvm (GET /v1/storage-drivers).",
						Validators: []validator.String{stringvalidator.OneOf("file", "lvm", "ceph", "san-iscsi", "san-lvm")}},
					"path": schema.StringAttribute{Optional: true, Description: "Directory (file), volume group (lvm, san-lvm), RADOS pool (ceph) or target IQN (san-iscsi)."},
					"options": schema.MapAttribute{Optional: true, ElementType: types.StringType,
						Description: "The driver's settings (lvm: thin_pool; ceph: conf, user, monitors, secret; san-iscsi: portal, tid, dir)."},
					"tags": schema.ListAttribute{Optional: true, ElementType: types.StringType, Description: "Labels a disk's storage_tags select by."},
					"default": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
						Description: "Disks naming neither storage nor tags go here; at most one storage is the default (none: the first enabled)."},
					"enabled": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
						Description: "false: the storage takes no new disk (its disks stay)."},
					"disk_overcommit": schema.Float64Attribute{Optional: true, Description: "Virtual size of the disks per byte of capacity (1..16); unset: the cluster's.",
						Validators: []validator.Float64{float64validator.Between(1, 16)}},
				}},
			},
		},
	}
}

func (m clusterModel) body() api.ClusterBody {
	b := api.ClusterBody{Name: m.Name.ValueString(), VirtType: m.VirtType.ValueString(), Strategy: m.Strategy.ValueString(),
		CPUOvercommit: m.CPUOvercommit.ValueFloat64(), RAMOvercommit: m.RAMOvercommit.ValueFloat64(), DiskOvercommit: m.DiskOvercommit.ValueFloat64(),
		MaxVMs: int(m.MaxVMs.ValueInt64()), MaxVMsPerNode: int(m.MaxVMsPerNode.ValueInt64()), NetworkMode: m.NetworkMode.ValueString(),
		Bridge: m.Bridge.ValueString(), VNI: int(m.VNI.ValueInt64())}
	for _, s := range m.Storages {
		ref := model.StorageRef{Name: s.Name.ValueString(), Driver: s.Driver.ValueString(), Path: s.Path.ValueString(), Tags: plainStrings(s.Tags),
			Default: s.Default.ValueBool(), DiskOvercommit: s.DiskOvercommit.ValueFloat64()}
		if !s.Enabled.IsNull() && !s.Enabled.IsUnknown() && !s.Enabled.ValueBool() {
			off := false
			ref.Enabled = &off
		}
		for k, v := range s.Options {
			if ref.Options == nil {
				ref.Options = map[string]string{}
			}
			ref.Options[k] = v.ValueString()
		}
		b.Storages = append(b.Storages, ref)
	}
	return b
}

func clusterState(c model.Cluster) clusterModel {
	m := clusterModel{ID: types.StringValue(c.ID), Name: types.StringValue(c.Name), VirtType: types.StringValue(c.VirtType),
		Strategy: types.StringValue(c.Strategy), CPUOvercommit: types.Float64Value(c.CPUOvercommit), RAMOvercommit: types.Float64Value(c.RAMOvercommit),
		DiskOvercommit: types.Float64Value(c.DiskOvercommit), MaxVMs: types.Int64Value(int64(c.MaxVMs)), MaxVMsPerNode: types.Int64Value(int64(c.MaxVMsPerNode)),
		NetworkMode: types.StringValue(c.NetworkMode), Bridge: strOrNull(c.Bridge), VNI: types.Int64Null()}
	if c.VNI != 0 {
		m.VNI = types.Int64Value(int64(c.VNI))
	}
	for _, s := range c.Storages {
		sm := storageModel{Name: types.StringValue(s.Name), Driver: types.StringValue(s.Driver), Path: strOrNull(s.Path),
			Default: types.BoolValue(s.Default), Enabled: types.BoolValue(s.IsEnabled()), DiskOvercommit: types.Float64Null()}
		if s.DiskOvercommit != 0 {
			sm.DiskOvercommit = types.Float64Value(s.DiskOvercommit)
		}
		if len(s.Tags) > 0 {
			sm.Tags = stringList(s.Tags)
		}
		for k, v := range s.Options {
			if sm.Options == nil {
				sm.Options = map[string]types.String{}
			}
			sm.Options[k] = types.StringValue(v)
		}
		m.Storages = append(m.Storages, sm)
	}
	return m
}

func (r *clusterResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := r.c.CreateCluster(ctx, plan.body())
	if err != nil {
		addError(&resp.Diagnostics, "Creating cluster "+plan.Name.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, clusterState(c))...)
}

func (r *clusterResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var st clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := r.c.GetCluster(ctx, st.ID.ValueString())
	if notFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, "Reading cluster "+st.ID.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, clusterState(c))...)
}

func (r *clusterResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := r.c.UpdateCluster(ctx, plan.ID.ValueString(), plan.body())
	if err != nil {
		addError(&resp.Diagnostics, "Updating cluster "+plan.Name.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, clusterState(c))...)
}

func (r *clusterResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var st clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Its nodes may still be going (their VMs first).
	err := retryConflict(ctx, func() error { return r.c.DeleteCluster(ctx, st.ID.ValueString()) })
	if err != nil && !notFound(err) {
		addError(&resp.Diagnostics, "Deleting cluster "+st.Name.ValueString(), err)
	}
}

func (r *clusterResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

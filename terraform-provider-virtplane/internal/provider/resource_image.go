package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

type imageResource struct{ base }

func newImageResource() resource.Resource { return &imageResource{} }

type imageModel struct {
	ID        types.String `tfsdk:"id"`
	Name      types.String `tfsdk:"name"`
	Source    types.String `tfsdk:"source"`
	Format    types.String `tfsdk:"format"`
	OSType    types.String `tfsdk:"os_type"`
	SizeMiB   types.Int64  `tfsdk:"size_mib"`
	ClusterID types.String `tfsdk:"cluster_id"`
	State     types.String `tfsdk:"state"`
	Nodes     types.List   `tfsdk:"nodes"`
}

func (r *imageResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_image"
}

// imageSource checks an image source the way the daemon does.
type imageSource struct{}

func (imageSource) Description(context.Context) string {
	return "an absolute path on the daemon's host or an http(s) URL"
}
func (v imageSource) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }
func (v imageSource) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := model.ValidImageSource("source", req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid image source", err.Error())
	}
}

func (r *imageResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		Description: "An OS image VMs are cloned from. With cluster_id it is imported into the storage of that cluster's nodes (a task the apply waits for); a new cluster_id imports it there too, in place.",
		Attributes: map[string]schema.Attribute{
			"id":   idAttribute(),
			"name": nameAttribute("Image", true),
			"source": schema.StringAttribute{Required: true, Description: "Absolute path of the image file on the daemon's host, or an http(s) URL.",
				Validators: []validator.String{imageSource{}}, PlanModifiers: replace},
			"format": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("qcow2"),
				Validators: []validator.String{stringvalidator.OneOf("qcow2", "raw")}, PlanModifiers: replace},
			"os_type": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("linux"),
				Validators: []validator.String{stringvalidator.OneOf("linux", "windows")}, PlanModifiers: replace},
			"size_mib": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(0),
				Description: "Size in MiB (0: as the file is).", Validators: []validator.Int64{int64validator.AtLeast(0)},
				PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()}},
			"cluster_id": schema.StringAttribute{Optional: true, Description: "Import into the storage of this cluster's nodes. The API does not record it: an imported image has none until set."},
			"state":      schema.StringAttribute{Computed: true, Description: "registered, importing, ready, failed or deleting."},
			"nodes":      schema.ListAttribute{Computed: true, ElementType: types.StringType, Description: "Nodes whose storage holds the image."},
		},
	}
}

func imageState(img model.Image, clusterID types.String) imageModel {
	return imageModel{ID: types.StringValue(img.ID), Name: types.StringValue(img.Name), Source: types.StringValue(img.Source),
		Format: types.StringValue(img.Format), OSType: types.StringValue(img.OSType), SizeMiB: types.Int64Value(img.SizeMiB),
		ClusterID: clusterID, State: types.StringValue(img.State), Nodes: listValue(img.Nodes)}
}

func (r *imageResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan imageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	img, err := r.c.CreateImage(ctx, api.ImageBody{Name: plan.Name.ValueString(), Source: plan.Source.ValueString(), Format: plan.Format.ValueString(),
		OSType: plan.OSType.ValueString(), SizeMiB: plan.SizeMiB.ValueInt64(), ClusterID: plan.ClusterID.ValueString()})
	if err != nil {
		addError(&resp.Diagnostics, "Creating image "+plan.Name.ValueString(), err)
		return
	}
	if img.TaskID != "" {
		if err := r.wait(ctx, api.TaskView{ID: img.TaskID}); err != nil {
			// The import undid itself; the record goes too, so nothing is half made.
			if tv, derr := r.c.DeleteImage(ctx, img.ID); derr == nil {
				_ = r.wait(ctx, tv)
			}
			addError(&resp.Diagnostics, "Importing image "+plan.Name.ValueString(), err)
			return
		}
		if img, err = r.c.GetImage(ctx, img.ID); err != nil {
			addError(&resp.Diagnostics, "Reading image "+plan.Name.ValueString(), err)
			return
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, imageState(img, plan.ClusterID))...)
}

func (r *imageResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var st imageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	img, err := r.c.GetImage(ctx, st.ID.ValueString())
	if notFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, "Reading image "+st.ID.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, imageState(img, st.ClusterID))...)
}

// Update imports the image into a new cluster_id's nodes (the only change
// that does not replace it).
func (r *imageResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan imageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := plan.ID.ValueString()
	if c := plan.ClusterID.ValueString(); c != "" {
		_, tv, err := r.c.ImportImage(ctx, id, api.ImageImportBody{ClusterID: c})
		if err == nil {
			err = r.wait(ctx, tv)
		}
		if err != nil {
			addError(&resp.Diagnostics, "Importing image "+plan.Name.ValueString()+" into cluster "+c, err)
			return
		}
	}
	img, err := r.c.GetImage(ctx, id)
	if err != nil {
		addError(&resp.Diagnostics, "Reading image "+id, err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, imageState(img, plan.ClusterID))...)
}

func (r *imageResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var st imageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var tv api.TaskView
	err := retryConflict(ctx, func() error {
		var err error
		tv, err = r.c.DeleteImage(ctx, st.ID.ValueString())
		return err
	})
	if notFound(err) {
		return // gone already
	}
	if err == nil {
		err = r.wait(ctx, tv) // a failed task is an error, whatever its class
	}
	if err != nil {
		addError(&resp.Diagnostics, "Deleting image "+st.Name.ValueString(), err)
	}
}

func (r *imageResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
)

type userResource struct{ base }

func newUserResource() resource.Resource { return &userResource{} }

type userModel struct {
	ID       types.String `tfsdk:"id"`
	Name     types.String `tfsdk:"name"`
	Password types.String `tfsdk:"password"`
	Role     types.String `tfsdk:"role"`
	Source   types.String `tfsdk:"source"`
}

func (r *userResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_user"
}

func (r *userResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		Description: "A local user. The API changes no user in place: a new name, password or role replaces the user (refused while they own VMs).",
		Attributes: map[string]schema.Attribute{
			"id":   idAttribute(),
			"name": nameAttribute("User", true),
			"password": schema.StringAttribute{Required: true, Sensitive: true, Description: "At least 8 characters. The API never returns it: an imported user has none recorded.",
				Validators: []validator.String{stringvalidator.LengthAtLeast(8)},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplaceIf(func(_ context.Context, req planmodifier.StringRequest, resp *stringplanmodifier.RequiresReplaceIfFuncResponse) {
					resp.RequiresReplace = !req.StateValue.IsNull() // imported: adopt the configured password
				}, "a new password replaces the user", "a new password replaces the user")}},
			"role": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("user"),
				Validators: []validator.String{stringvalidator.OneOf("admin", "user")}, PlanModifiers: replace},
			"source": schema.StringAttribute{Computed: true, Description: "local or ldap.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
		},
	}
}

func userState(u model.User, password types.String) userModel {
	return userModel{ID: types.StringValue(u.ID), Name: types.StringValue(u.Name), Password: password, Role: types.StringValue(string(u.Role)), Source: types.StringValue(u.Source)}
}

func (r *userResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan userModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	u, err := r.c.CreateUser(ctx, plan.Name.ValueString(), plan.Password.ValueString(), model.Role(plan.Role.ValueString()))
	if err != nil {
		addError(&resp.Diagnostics, "Creating user "+plan.Name.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, userState(u, plan.Password))...)
}

func (r *userResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var st userModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	u, err := r.c.GetUser(ctx, st.ID.ValueString())
	if notFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, "Reading user "+st.ID.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, userState(u, st.Password))...)
}

// Update only records a password configured for an imported user: every
// other change replaces the user.
func (r *userResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan userModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	u, err := r.c.GetUser(ctx, plan.ID.ValueString())
	if err != nil {
		addError(&resp.Diagnostics, "Reading user "+plan.ID.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, userState(u, plan.Password))...)
}

func (r *userResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var st userModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Their VMs may be going in the same destroy.
	err := retryConflict(ctx, func() error { return r.c.DeleteUser(ctx, st.ID.ValueString()) })
	if err != nil && !notFound(err) {
		addError(&resp.Diagnostics, "Deleting user "+st.Name.ValueString(), err)
	}
}

func (r *userResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

type tokenResource struct{ base }

func newTokenResource() resource.Resource { return &tokenResource{} }

type tokenModel struct {
	ID      types.String `tfsdk:"id"`
	Name    types.String `tfsdk:"name"`
	TTL     types.String `tfsdk:"ttl"`
	Token   types.String `tfsdk:"token"`
	Expires types.String `tfsdk:"expires"`
}

func (r *tokenResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_token"
}

// duration accepts a positive Go duration.
type duration struct{}

func (duration) Description(context.Context) string               { return "a positive Go duration (24h, 90m)" }
func (v duration) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }
func (v duration) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if d, err := time.ParseDuration(req.ConfigValue.ValueString()); err != nil || d <= 0 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration", req.ConfigValue.ValueString()+": want "+v.Description(ctx))
	}
}

func (r *tokenResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		Description: "An API token of the provider's user. Its secret is known only when Terraform creates it; an imported token has none.",
		Attributes: map[string]schema.Attribute{
			"id": idAttribute(),
			"name": schema.StringAttribute{Required: true, Validators: []validator.String{stringvalidator.LengthBetween(1, 64)}, PlanModifiers: replace,
				Description: "Token name; changing it issues a new token."},
			"ttl": schema.StringAttribute{Optional: true, Validators: []validator.String{duration{}}, PlanModifiers: replace,
				Description: "Lifetime as a Go duration; unset: no expiry."},
			"token": schema.StringAttribute{Computed: true, Sensitive: true, Description: "The secret.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"expires": schema.StringAttribute{Computed: true, Description: "When it expires (RFC 3339), empty for never.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
		},
	}
}

func expiry(t model.Token) types.String {
	if t.Expires.IsZero() {
		return types.StringValue("")
	}
	return types.StringValue(t.Expires.UTC().Format(time.RFC3339))
}

func (r *tokenResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan tokenModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	t, err := r.c.CreateToken(ctx, plan.Name.ValueString(), plan.TTL.ValueString())
	if err != nil {
		addError(&resp.Diagnostics, "Creating token "+plan.Name.ValueString(), err)
		return
	}
	plan.ID, plan.Token, plan.Expires = types.StringValue(t.Info.ID), types.StringValue(t.Token), expiry(t.Info)
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *tokenResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var st tokenModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	toks, err := r.c.ListTokens(ctx)
	if err != nil {
		addError(&resp.Diagnostics, "Reading tokens", err)
		return
	}
	for _, t := range toks {
		if t.ID == st.ID.ValueString() {
			st.Name, st.Expires = types.StringValue(t.Name), expiry(t)
			if st.Token.IsUnknown() {
				st.Token = types.StringNull()
			}
			resp.Diagnostics.Append(resp.State.Set(ctx, st)...)
			return
		}
	}
	resp.State.RemoveResource(ctx)
}

func (r *tokenResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	resp.Diagnostics.AddError("Updating a token", virtplane.Errorf(virtplane.ErrNotImplemented, "tokens change only by replacement").Error())
}

func (r *tokenResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var st tokenModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.c.DeleteToken(ctx, st.ID.ValueString()); err != nil && !notFound(err) {
		addError(&resp.Diagnostics, "Revoking token "+st.Name.ValueString(), err)
	}
}

func (r *tokenResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

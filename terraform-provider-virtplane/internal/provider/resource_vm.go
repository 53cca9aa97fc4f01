package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

type vmResource struct{ base }

func newVMResource() resource.Resource { return &vmResource{} }

type limitsModel struct {
	CPUPercent types.Int64 `tfsdk:"cpu_percent"`
	NetMbit    types.Int64 `tfsdk:"net_mbit"`
	DiskIOPS   types.Int64 `tfsdk:"disk_iops"`
}

// diskModel is a data disk; its place in the list is its identity (vdb,
// vdc, ... in order).
type diskModel struct {
	SizeGiB types.Int64  `tfsdk:"size_gib"`
	Storage types.String `tfsdk:"storage"`
	Target  types.String `tfsdk:"target"`
	Volume  types.String `tfsdk:"volume"`
}

type vmModel struct {
	ID        types.String   `tfsdk:"id"`
	Name      types.String   `tfsdk:"name"`
	ClusterID types.String   `tfsdk:"cluster_id"`
	ImageID   types.String   `tfsdk:"image_id"`
	PoolID    types.String   `tfsdk:"pool_id"`
	CPUs      types.Int64    `tfsdk:"cpus"`
	MemoryMiB types.Int64    `tfsdk:"memory_mib"`
	DiskGiB   types.Int64    `tfsdk:"disk_gib"`
	Storage   types.String   `tfsdk:"storage"`
	Disks     []diskModel    `tfsdk:"disk"`
	SSHKeys   []types.String `tfsdk:"ssh_keys"`
	UserData  types.String   `tfsdk:"user_data"`
	Owner     types.String   `tfsdk:"owner"`
	Limits    *limitsModel   `tfsdk:"limits"`
	Running   types.Bool     `tfsdk:"running"`
	State     types.String   `tfsdk:"state"`
	NodeID    types.String   `tfsdk:"node_id"`
	Addresses types.List     `tfsdk:"addresses"`
}

func (r *vmResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vm"
}

func (r *vmResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	limit := func(desc string, max int64) schema.Int64Attribute {
		return schema.Int64Attribute{Optional: true, Description: desc + " (0 or unset: none).", Validators: []validator.Int64{int64validator.Between(0, max)}}
	}
	resp.Schema = schema.Schema{
		Description: "A virtual machine: placed by the scheduler, addressed from its pool, a linked clone of its image, booted with cloud-init. " +
			"CPUs, memory, disk growth, data disks added or removed at the end of the list, limits and the power state change in place; name, cluster, image, pool, root storage, owner, SSH keys and user data replace it.",
		Attributes: map[string]schema.Attribute{
			"id":         idAttribute(),
			"name":       nameAttribute("VM", true),
			"cluster_id": schema.StringAttribute{Required: true, PlanModifiers: replace},
			"image_id":   schema.StringAttribute{Required: true, PlanModifiers: replace},
			"pool_id":    schema.StringAttribute{Required: true, Description: "IP pool of the VM's address (attached to its cluster).", PlanModifiers: replace},
			"cpus":       schema.Int64Attribute{Required: true, Description: "Virtual CPUs, 1..256; changes in place.", Validators: []validator.Int64{int64validator.Between(1, 256)}},
			"memory_mib": schema.Int64Attribute{Required: true, Description: "Memory in MiB; changes in place.", Validators: []validator.Int64{int64validator.Between(64, 4194304)}},
			"disk_gib": schema.Int64Attribute{Required: true, Description: "Disk size in GiB; grows in place. Disks never shrink: a smaller value is refused at plan time.",
				Validators: []validator.Int64{int64validator.Between(1, 65536)}},
			"storage": schema.StringAttribute{Optional: true, Computed: true, Description: "The cluster storage of the root disk; default the cluster's default storage, else the first with room. A different storage replaces the VM.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplaceIfConfigured()}},
			"ssh_keys": schema.ListAttribute{Optional: true, ElementType: types.StringType, Description: "OpenSSH public keys for cloud-init.",
				Validators:    []validator.List{listvalidator.SizeAtMost(32), listvalidator.ValueStringsAre(stringvalidator.RegexMatches(sshKey, "an OpenSSH public key"))},
				PlanModifiers: []planmodifier.List{listplanmodifier.RequiresReplace()}},
			"user_data": schema.StringAttribute{Optional: true, Description: "cloud-init user data, applied at the first boot. The API does not return it: an imported VM has none recorded.",
				Validators: []validator.String{stringvalidator.LengthAtMost(65536)}, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplaceIf(
					func(_ context.Context, req planmodifier.StringRequest, resp *stringplanmodifier.RequiresReplaceIfFuncResponse) {
						// An imported VM has no user data recorded: adopting the
						// configuration's is no change to the VM.
						resp.RequiresReplace = !req.StateValue.IsNull()
					}, "a change replaces the VM (cloud-init runs at the first boot)", "a change replaces the VM (cloud-init runs at the first boot)")}},
			"owner": schema.StringAttribute{Optional: true, Computed: true, Description: "User ID of the owner (admins may create VMs for others); default the caller.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplace()}},
			"limits": schema.SingleNestedAttribute{Optional: true, Description: "Limits; change in place.",
				Attributes: map[string]schema.Attribute{
					"cpu_percent": limit("CPU limit in percent", 100),
					"net_mbit":    limit("Network limit in Mbit/s, both directions", 1<<20),
					"disk_iops":   limit("Disk IOPS limit", 1<<24),
				}},
			"running": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				Description: "Whether the VM runs; changes in place (start or stop)."},
			"state":     schema.StringAttribute{Computed: true, Description: "creating, running, stopped, failed, rescue."},
			"node_id":   schema.StringAttribute{Computed: true, Description: "Node the VM runs on."},
			"addresses": schema.ListAttribute{Computed: true, ElementType: types.StringType, Description: "The VM's addresses from its pool."},
		},
		Blocks: map[string]schema.Block{
			"disk": schema.ListNestedBlock{
				Description: "A data disk beside the root disk, at vdb, vdc, ... in order. Disks added at the end are attached in place, removed from the end detached (their data goes), grown in place; disks never shrink nor change storage.",
				Validators:  []validator.List{listvalidator.SizeAtMost(model.MaxDataDisks)},
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"size_gib": schema.Int64Attribute{Required: true, Description: "Size in GiB; grows in place.", Validators: []validator.Int64{int64validator.Between(1, 65536)}},
					"storage": schema.StringAttribute{Optional: true, Computed: true, Description: "The cluster storage of the disk; default as for the root disk.",
						PlanModifiers: []planmodifier.String{keepKnownState()}},
					"target": schema.StringAttribute{Computed: true, Description: "The device in the guest (vdb, ...).",
						PlanModifiers: []planmodifier.String{keepKnownState()}},
					"volume": schema.StringAttribute{Computed: true, Description: "The disk's volume in its storage.",
						PlanModifiers: []planmodifier.String{keepKnownState()}},
				}},
			},
		},
	}
}

// diskRequests are the data disks of a create.
func (m vmModel) diskRequests() []api.DiskRequest {
	var out []api.DiskRequest
	for _, d := range m.Disks {
		out = append(out, d.request())
	}
	return out
}

func (d diskModel) request() api.DiskRequest {
	r := api.DiskRequest{SizeGiB: d.SizeGiB.ValueInt64()}
	if !d.Storage.IsUnknown() && !d.Storage.IsNull() {
		r.Storage = d.Storage.ValueString()
	}
	return r
}

func (m limitsModel) limits() model.Limits {
	return model.Limits{CPUPercent: int(m.CPUPercent.ValueInt64()), NetMbit: int(m.NetMbit.ValueInt64()), DiskIOPS: int(m.DiskIOPS.ValueInt64())}
}

func (m vmModel) limits() model.Limits {
	if m.Limits == nil {
		return model.Limits{}
	}
	return m.Limits.limits()
}

// vmState is the state of vm; prior supplies what the API does not return
// (user data) and the shape the configuration gave the limits.
func vmState(vm model.VM, prior vmModel) vmModel {
	m := vmModel{ID: types.StringValue(vm.ID), Name: types.StringValue(vm.Name), ClusterID: types.StringValue(vm.ClusterID),
		ImageID: types.StringValue(vm.ImageID), PoolID: types.StringValue(vm.PoolID), CPUs: types.Int64Value(int64(vm.CPUs)),
		MemoryMiB: types.Int64Value(vm.MemoryMiB), DiskGiB: types.Int64Value(vm.DiskGiB), UserData: prior.UserData,
		Owner: types.StringValue(vm.Owner), Running: types.BoolValue(vm.State == model.VMRunning || vm.State == model.VMRescue),
		State: types.StringValue(vm.State), NodeID: strOrNull(vm.NodeID), Addresses: listValue(vm.Addresses)}
	if len(vm.SSHKeys) > 0 {
		m.SSHKeys = stringList(vm.SSHKeys)
	}
	m.Storage = strOrNull(vm.Storage)
	for _, d := range vm.Disks {
		m.Disks = append(m.Disks, diskModel{SizeGiB: types.Int64Value(d.SizeGiB), Storage: strOrNull(d.Storage),
			Target: types.StringValue(d.Target), Volume: types.StringValue(d.Volume)})
	}
	if l := vm.Limits; !l.IsZero() || prior.Limits != nil {
		opt := func(v int, was types.Int64) types.Int64 {
			if v == 0 && (prior.Limits == nil || was.IsNull()) {
				return types.Int64Null()
			}
			return types.Int64Value(int64(v))
		}
		var p limitsModel
		if prior.Limits != nil {
			p = *prior.Limits
		}
		m.Limits = &limitsModel{CPUPercent: opt(l.CPUPercent, p.CPUPercent), NetMbit: opt(l.NetMbit, p.NetMbit), DiskIOPS: opt(l.DiskIOPS, p.DiskIOPS)}
	}
	return m
}

func newKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "terraform-" + hex.EncodeToString(b)
}

// ModifyPlan refuses a smaller disk at plan time: disks only grow, and a
// replacement would lose the VM's data.
func (r *vmResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var plan, st vmModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !plan.DiskGiB.IsUnknown() && plan.DiskGiB.ValueInt64() < st.DiskGiB.ValueInt64() {
		resp.Diagnostics.AddAttributeError(path.Root("disk_gib"), "Disks only grow",
			fmt.Sprintf("disk_gib %d is below the VM's %d GiB: shrinking would cut off data the guest wrote", plan.DiskGiB.ValueInt64(), st.DiskGiB.ValueInt64()))
	}
	for i, pd := range plan.Disks {
		if i >= len(st.Disks) {
			break
		}
		sd := st.Disks[i]
		at := path.Root("disk").AtListIndex(i)
		if !pd.SizeGiB.IsUnknown() && pd.SizeGiB.ValueInt64() < sd.SizeGiB.ValueInt64() {
			resp.Diagnostics.AddAttributeError(at.AtName("size_gib"), "Disks only grow",
				fmt.Sprintf("disk %s: %d GiB is below its %d GiB: shrinking would cut off data the guest wrote", sd.Target.ValueString(), pd.SizeGiB.ValueInt64(), sd.SizeGiB.ValueInt64()))
		}
		if !pd.Storage.IsUnknown() && !pd.Storage.IsNull() && !pd.Storage.Equal(sd.Storage) {
			resp.Diagnostics.AddAttributeError(at.AtName("storage"), "A data disk does not change storage",
				fmt.Sprintf("disk %s is on storage %s: moving a data disk is not implemented; remove the disk (the last in the list) and add one on %s", sd.Target.ValueString(), sd.Storage.ValueString(), pd.Storage.ValueString()))
		}
	}
}

func (r *vmResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan vmModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	body := api.VMCreateBody{Name: plan.Name.ValueString(), ClusterID: plan.ClusterID.ValueString(), ImageID: plan.ImageID.ValueString(),
		PoolID: plan.PoolID.ValueString(), CPUs: int(plan.CPUs.ValueInt64()), MemoryMiB: plan.MemoryMiB.ValueInt64(), DiskGiB: plan.DiskGiB.ValueInt64(),
		SSHKeys: plainStrings(plan.SSHKeys), UserData: plan.UserData.ValueString(), Limits: plan.limits(), Disks: plan.diskRequests()}
	if !plan.Storage.IsUnknown() && !plan.Storage.IsNull() {
		body.Storage = plan.Storage.ValueString()
	}
	if !plan.Owner.IsUnknown() {
		body.Owner = plan.Owner.ValueString()
	}
	// One key per create: the client repeats the request with it when the
	// daemon cannot be reached, and the daemon answers a repeat with the
	// first VM, so no retry ever makes a second one.
	vm, tv, err := r.c.CreateVM(ctx, body, newKey())
	if err != nil {
		addError(&resp.Diagnostics, "Creating VM "+plan.Name.ValueString(), err)
		return
	}
	if err := r.wait(ctx, tv); err != nil {
		// The task undid its steps; the failed VM record goes too.
		if dt, derr := r.c.DeleteVM(ctx, vm.ID); derr == nil {
			_ = r.wait(ctx, dt)
		}
		addError(&resp.Diagnostics, "Creating VM "+plan.Name.ValueString(), err)
		return
	}
	if !plan.Running.ValueBool() {
		if tv, err = r.c.StopVM(ctx, vm.ID); err == nil {
			err = r.wait(ctx, tv)
		}
		if err != nil {
			r.keep(ctx, vm.ID, plan, resp)
			addError(&resp.Diagnostics, "Stopping VM "+plan.Name.ValueString(), err)
			return
		}
	}
	r.keep(ctx, vm.ID, plan, resp)
}

// keep records the VM as it is now.
func (r *vmResource) keep(ctx context.Context, id string, prior vmModel, resp *resource.CreateResponse) {
	vm, err := r.c.GetVM(ctx, id)
	if err != nil {
		addError(&resp.Diagnostics, "Reading VM "+id, err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, vmState(vm, prior))...)
}

func (r *vmResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var st vmModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	vm, err := r.c.GetVM(ctx, st.ID.ValueString())
	if notFound(err) || err == nil && vm.State == model.VMDeleting {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, "Reading VM "+st.ID.ValueString(), err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, vmState(vm, st))...)
}

// Update changes in place what the plan changed: limits, then size, then
// the power state, each a task the apply waits for.
func (r *vmResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, st vmModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := st.ID.ValueString()
	step := func(what string, start func() (api.TaskView, error)) bool {
		tv, err := start()
		if err == nil {
			err = r.wait(ctx, tv)
		}
		if err != nil {
			addError(&resp.Diagnostics, what+" of VM "+plan.Name.ValueString(), err)
			return false
		}
		return true
	}
	ok := true
	if !plan.limits().Equal(st.limits()) {
		ok = step("Setting the limits", func() (api.TaskView, error) { return r.c.SetVMLimits(ctx, id, plan.limits()) })
	}
	var cpus int
	var mem, disk int64
	if !plan.CPUs.Equal(st.CPUs) {
		cpus = int(plan.CPUs.ValueInt64())
	}
	if !plan.MemoryMiB.Equal(st.MemoryMiB) {
		mem = plan.MemoryMiB.ValueInt64()
	}
	if !plan.DiskGiB.Equal(st.DiskGiB) {
		disk = plan.DiskGiB.ValueInt64()
	}
	if ok && (cpus != 0 || mem != 0 || disk != 0) {
		ok = step("Resizing", func() (api.TaskView, error) { return r.c.ResizeVM(ctx, id, cpus, mem, disk) })
	}
	// Data disks by place: the ones past the plan's end go, the plan's
	// past the state's end come, the others grow.
	for i := len(plan.Disks); ok && i < len(st.Disks); i++ {
		target := st.Disks[i].Target.ValueString()
		ok = step("Removing disk "+target, func() (api.TaskView, error) { return r.c.DetachVMDisk(ctx, id, target) })
	}
	for i, pd := range plan.Disks {
		if !ok {
			break
		}
		if i >= len(st.Disks) {
			ok = step("Adding a disk", func() (api.TaskView, error) { return r.c.AttachVMDisk(ctx, id, pd.request()) })
			continue
		}
		if sd := st.Disks[i]; pd.SizeGiB.ValueInt64() > sd.SizeGiB.ValueInt64() {
			ok = step("Growing disk "+sd.Target.ValueString(), func() (api.TaskView, error) {
				return r.c.ResizeVMDisk(ctx, id, sd.Target.ValueString(), pd.SizeGiB.ValueInt64())
			})
		}
	}
	if ok && !plan.Running.Equal(st.Running) {
		if plan.Running.ValueBool() {
			ok = step("Starting", func() (api.TaskView, error) { return r.c.StartVM(ctx, id) })
		} else {
			ok = step("Stopping", func() (api.TaskView, error) { return r.c.StopVM(ctx, id) })
		}
	}
	_ = ok
	// What was done is recorded even when a step failed.
	vm, err := r.c.GetVM(ctx, id)
	if err != nil {
		addError(&resp.Diagnostics, "Reading VM "+id, err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, vmState(vm, plan))...)
}

func (r *vmResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var st vmModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	tv, err := r.c.DeleteVM(ctx, st.ID.ValueString())
	if notFound(err) {
		return // gone already
	}
	if err == nil {
		err = r.wait(ctx, tv) // a failed task is an error, whatever its class
	}
	if err != nil {
		addError(&resp.Diagnostics, "Deleting VM "+st.Name.ValueString(), err)
	}
}

func (r *vmResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

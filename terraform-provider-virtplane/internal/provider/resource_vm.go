package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/network/firewall"
)

type vmResource struct{ base }

func newVMResource() resource.Resource { return &vmResource{} }

type limitsModel struct {
	CPUPercent     types.Int64    `tfsdk:"cpu_percent"`
	CPUWeight      types.Int64    `tfsdk:"cpu_weight"`
	IOWeight       types.Int64    `tfsdk:"io_weight"`
	NetMbit        types.Int64    `tfsdk:"net_mbit"`
	NetInMbit      types.Int64    `tfsdk:"net_in_mbit"`
	NetOutMbit     types.Int64    `tfsdk:"net_out_mbit"`
	DiskIOPS       types.Int64    `tfsdk:"disk_iops"`
	BlockInPorts   []types.String `tfsdk:"block_in_ports"`
	BlockOutPorts  []types.String `tfsdk:"block_out_ports"`
	MaxConnections types.Int64    `tfsdk:"max_connections"`
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
	Address   types.String   `tfsdk:"address"`
	DualStack types.Bool     `tfsdk:"dual_stack"`
}

func (r *vmResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vm"
}

func (r *vmResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	limit := func(desc string, max int64, more ...validator.Int64) schema.Int64Attribute {
		return schema.Int64Attribute{Optional: true, Description: desc + " (0 or unset: none).", Validators: append([]validator.Int64{int64validator.Between(0, max)}, more...)}
	}
	ports := func(desc string) schema.ListAttribute {
		return schema.ListAttribute{Optional: true, ElementType: types.StringType,
			Description: desc + ": PORT/tcp, PORT/udp or FIRST-LAST/tcp|udp (25/tcp, 6000-6010/udp); at most 64; leave it out for none.",
			Validators:  []validator.List{listvalidator.SizeBetween(1, 64), listvalidator.ValueStringsAre(portRange{})}}
	}
	netDir := path.MatchRelative().AtParent().AtName("net_in_mbit")
	netOut := path.MatchRelative().AtParent().AtName("net_out_mbit")
	resp.Schema = schema.Schema{
		Description: "A virtual machine: placed by the scheduler, addressed from its pool, a linked clone of its image, booted with cloud-init. " +
			"CPUs, memory, disk growth, data disks added or removed at the end of the list, limits and the power state change in place; name, cluster, image, pool, root storage, owner, SSH keys, user data, address and dual_stack replace it.",
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
			"limits": schema.SingleNestedAttribute{Optional: true, Description: "Limits; change in place (the whole set is sent: what is left out is removed). " +
				"Per-disk limits (the API's limits.disks) are not managed here: an update keeps the VM's.",
				Attributes: map[string]schema.Attribute{
					"cpu_percent": limit("CPU limit in percent", 100),
					"cpu_weight":  limit("Relative CPU share against the node's other VMs (cgroup weight 1-10000)", 10000),
					"io_weight":   limit("Relative disk IO share against the node's other VMs (cgroup weight 1-10000)", 10000),
					"net_mbit": limit("Network limit in Mbit/s, both directions; not with net_in_mbit or net_out_mbit", 1<<20,
						int64validator.ConflictsWith(netDir, netOut)),
					"net_in_mbit":     limit("Limit of what the VM receives, Mbit/s", 1000000),
					"net_out_mbit":    limit("Limit of what the VM sends, Mbit/s", 1000000),
					"disk_iops":       limit("Disk IOPS limit", 1<<24),
					"block_in_ports":  ports("TCP/UDP ports dropped towards the VM"),
					"block_out_ports": ports("TCP/UDP destination ports dropped from the VM (outbound SMTP, say)"),
					"max_connections": limit("Cap of the VM's concurrent connections; routed clusters only (the API refuses it in bridge and VxLAN clusters with 501 Not Implemented)", 1000000),
				}},
			"running": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				Description: "Whether the VM runs; changes in place (start or stop)."},
			"state":     schema.StringAttribute{Computed: true, Description: "creating, running, stopped, failed, rescue."},
			"node_id":   schema.StringAttribute{Computed: true, Description: "Node the VM runs on."},
			"addresses": schema.ListAttribute{Computed: true, ElementType: types.StringType, Description: "The VM's addresses from its pool (with dual_stack an IPv4 one, then an IPv6 one)."},
			"address": schema.StringAttribute{Optional: true, Computed: true,
				Description: "The address the VM gets, from a block of its pool (admins only; the way to hand out a reserved address); with dual_stack the one of its family. " +
					"Default: the next free one, and this is then the VM's first address. A different address replaces the VM; leaving it out later keeps the VM.",
				Validators: []validator.String{ipAddress{}},
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplaceIf(addressReplace,
					"a different address replaces the VM", "a different address replaces the VM")}},
			"dual_stack": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				Description: "An IPv4 and an IPv6 address from the pool (it needs a block of each; not in routed clusters). A change replaces the VM.",
				PlanModifiers: []planmodifier.Bool{boolplanmodifier.RequiresReplaceIf(func(_ context.Context, req planmodifier.BoolRequest, resp *boolplanmodifier.RequiresReplaceIfFuncResponse) {
					// A state of an older provider has none recorded (a refresh
					// reads it): that is no change of the VM.
					resp.RequiresReplace = !req.StateValue.IsNull()
				}, "a change replaces the VM", "a change replaces the VM")}},
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
	n := func(v types.Int64) int { return int(v.ValueInt64()) }
	strs := func(l []types.String) []string {
		if len(l) == 0 {
			return nil
		}
		return plainStrings(l)
	}
	return model.Limits{CPUPercent: n(m.CPUPercent), CPUWeight: n(m.CPUWeight), IOWeight: n(m.IOWeight), NetMbit: n(m.NetMbit),
		NetInMbit: n(m.NetInMbit), NetOutMbit: n(m.NetOutMbit), DiskIOPS: n(m.DiskIOPS),
		BlockInPorts: strs(m.BlockInPorts), BlockOutPorts: strs(m.BlockOutPorts), MaxConnections: n(m.MaxConnections)}
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
	l := vm.Limits
	l.Disks = nil // not managed here
	if !l.IsZero() || prior.Limits != nil {
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
		ports := func(v []string) []types.String {
			if len(v) == 0 {
				return nil
			}
			return stringList(v)
		}
		m.Limits = &limitsModel{CPUPercent: opt(l.CPUPercent, p.CPUPercent), CPUWeight: opt(l.CPUWeight, p.CPUWeight), IOWeight: opt(l.IOWeight, p.IOWeight),
			NetMbit: opt(l.NetMbit, p.NetMbit), NetInMbit: opt(l.NetInMbit, p.NetInMbit), NetOutMbit: opt(l.NetOutMbit, p.NetOutMbit),
			DiskIOPS: opt(l.DiskIOPS, p.DiskIOPS), BlockInPorts: ports(l.BlockInPorts), BlockOutPorts: ports(l.BlockOutPorts),
			MaxConnections: opt(l.MaxConnections, p.MaxConnections)}
	}
	m.DualStack = types.BoolValue(vm.DualStack)
	// The address asked for is one of the VM's (spelled as configured);
	// else the VM's first.
	m.Address = types.StringNull()
	if len(vm.Addresses) > 0 {
		m.Address = types.StringValue(vm.Addresses[0])
	}
	if a := prior.Address; !a.IsNull() && !a.IsUnknown() && hasAddress(vm.Addresses, a.ValueString()) {
		m.Address = a
	}
	return m
}

// hasAddress reports whether addrs holds a (compared as addresses, not
// as text).
func hasAddress(addrs []string, a string) bool {
	want, err := netip.ParseAddr(a)
	if err != nil {
		return false
	}
	for _, s := range addrs {
		if got, err := netip.ParseAddr(s); err == nil && got.Unmap() == want.Unmap() {
			return true
		}
	}
	return false
}

// addressReplace replaces the VM for an address it does not hold: one of
// its addresses (an imported dual-stack VM's other family, a different
// spelling) is recorded in place.
func addressReplace(ctx context.Context, req planmodifier.StringRequest, resp *stringplanmodifier.RequiresReplaceIfFuncResponse) {
	if req.ConfigValue.IsNull() || req.StateValue.IsNull() || req.State.Raw.IsNull() {
		return // left out: the VM keeps its address
	}
	var addrs []string
	if d := req.State.GetAttribute(ctx, path.Root("addresses"), &addrs); d.HasError() {
		resp.RequiresReplace = true
		return
	}
	resp.RequiresReplace = req.ConfigValue.IsUnknown() || !hasAddress(addrs, req.ConfigValue.ValueString())
}

// portRange accepts a port range as the API does: 25/tcp, 6000-6010/udp.
type portRange struct{}

func (portRange) Description(context.Context) string {
	return "a port range: PORT/tcp, PORT/udp or FIRST-LAST/tcp|udp"
}
func (v portRange) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }
func (v portRange) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := firewall.ParsePortRange(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid port range", err.Error())
	}
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
		SSHKeys: plainStrings(plan.SSHKeys), UserData: plan.UserData.ValueString(), Limits: plan.limits(), Disks: plan.diskRequests(),
		DualStack: plan.DualStack.ValueBool()}
	if !plan.Address.IsUnknown() && !plan.Address.IsNull() {
		body.Address = plan.Address.ValueString()
	}
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
		// The PUT replaces every limit: the per-disk ones, not managed
		// here, are sent as the VM has them.
		vm, err := r.c.GetVM(ctx, id)
		var tv api.TaskView
		if err == nil {
			l := plan.limits()
			l.Disks = vm.Limits.Disks
			tv, err = r.c.SetVMLimits(ctx, id, l)
		}
		if err == nil {
			err = r.wait(ctx, tv)
		}
		if err != nil {
			// The API names the field of its body, the limits.
			resp.Diagnostics.AddAttributeError(path.Root("limits"), "Setting the limits of VM "+plan.Name.ValueString(), err.Error())
			ok = false
		}
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

package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
)

// VMCreateBody asks for a VM.
type VMCreateBody struct {
	Name      string `json:"name" minLength:"1" maxLength:"63"`
	ClusterID string `json:"cluster_id" minLength:"1"`
	ImageID   string `json:"image_id" minLength:"1"`
	PoolID    string `json:"pool_id" minLength:"1" doc:"IP pool the VM's address comes from"`
	CPUs      int    `json:"cpus" minimum:"1" maximum:"256"`
	MemoryMiB int64  `json:"memory_mib" minimum:"64" maximum:"4194304"`
	DiskGiB   int64  `json:"disk_gib" minimum:"1" maximum:"65536"`
	// Storage and StorageTags place the root disk (default: the cluster's
	// default storage, else the first enabled one with room).
	Storage     string   `json:"storage,omitempty" maxLength:"63" doc:"the cluster storage of the root disk"`
	StorageTags []string `json:"storage_tags,omitempty" maxItems:"16" doc:"the root disk goes to an enabled storage carrying every one of these tags (the default first, then in the cluster's order) that has room"`
	// Disks are data disks beside the root disk: vdb, vdc, ... in order.
	Disks    []DiskRequest `json:"disks,omitempty" maxItems:"8" doc:"data disks beside the root disk, at vdb, vdc, ... in order; each placed like the root disk, by its storage or tags"`
	SSHKeys  []string      `json:"ssh_keys,omitempty" maxItems:"32"`
	UserData string        `json:"user_data,omitempty" maxLength:"65536" doc:"cloud-init user data"`
	Owner    string        `json:"owner,omitempty" doc:"admins may create a VM for another user"`
	// Limits are in force from the start: net_mbit shapes the VM's network
	// port in both directions.
	Limits model.Limits `json:"limits,omitempty" doc:"limits from the start (net_mbit shapes the network port)"`
	// Console is the graphical console: vnc (default; the web console),
	// spice, or none.
	Console      string              `json:"console,omitempty" enum:"vnc,spice,none" default:"vnc" doc:"graphical console: vnc (the web console of POST /v1/vms/{id}/console), spice, or none"`
	AntiAffinity *model.AntiAffinity `json:"anti_affinity,omitempty" doc:"keep the VM off the nodes of its group's other members (groups are the owner's)"`
	TemplateID   string              `json:"template_id,omitempty" doc:"domain template (default: the cluster's, else the built-in one)"`
	Tags         []string            `json:"tags,omitempty" maxItems:"32" doc:"tags scripts select VMs by"`
	// Address is the admin's choice of address (VMmanager's "IP address"
	// field of a VM create).
	Address string `json:"address,omitempty" maxLength:"45" doc:"the address the VM gets, from a block of its pool (admins only; the way to hand out a reserved address); default: the next free one"`
	// DualStack asks for an address of each family.
	DualStack bool `json:"dual_stack,omitempty" doc:"an IPv4 and an IPv6 address from the pool (it needs a block of each), both in the guest's cloud-init; address, when given, is the one of its family. Not in routed clusters (routed IPv6 is not implemented)"`
	// Script runs on the VM once it is up (VMmanager's script on create).
	Script *scriptrun.OnCreate `json:"script,omitempty" doc:"a script to run on the VM once its create succeeded (a script.run task after the create's); with mail_result its result and notice go to the VM's owner"`
}

// VMCreateInput is the create request; the Idempotency-Key header makes a
// retried request return the first request's VM and task.
type VMCreateInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"a key of the caller's choice; a second request with the same key returns the first request's VM and task"`
	Body           VMCreateBody
}

// TaskView is a task as the API shows it.
type TaskView struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Owner      string    `json:"owner" doc:"the user who started it"`
	Target     string    `json:"target"`
	Resources  []string  `json:"resources"`
	State      string    `json:"state" enum:"queued,running,undoing,succeeded,failed,canceled" doc:"queued, running and undoing: still under way (an order interrupted by a daemon stop is rolled back and queued again, same task, same key); succeeded, failed and canceled: final, failed for good with error_class naming why"`
	Progress   int       `json:"progress"`
	Message    string    `json:"message"`
	Error      string    `json:"error,omitempty"`
	ErrorClass string    `json:"error_class,omitempty"`
	Created    time.Time `json:"created"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	Cancel     bool      `json:"cancel_requested"`
	Attempt    int       `json:"attempt" doc:"the run of the task now under way or last made, from 1; a run interrupted by a daemon stop is rolled back and the task runs again"`
	Attempts   int       `json:"max_attempts" doc:"how many runs the task gets at most (1: an interrupted run fails it, error_class unavailable)"`
}

func viewTask(t store.Task) TaskView {
	return TaskView{ID: t.ID, Kind: t.Kind, Owner: t.Owner, Target: t.Target, Resources: t.Resources, State: string(t.State),
		Progress: t.Progress, Message: t.Message, Error: t.Error, ErrorClass: t.ErrorClass, Created: t.Created,
		Started: t.Started, Finished: t.Finished, Cancel: t.CancelRequested, Attempt: t.Attempt, Attempts: max(t.MaxAttempts, 1)}
}

// VMTaskOutput answers a VM change: the VM and the task doing the change.
type VMTaskOutput struct {
	Body struct {
		VM   model.VM `json:"vm"`
		Task TaskView `json:"task"`
		// ScriptRun is the run a create asked for.
		ScriptRun *scriptrun.Run `json:"script_run,omitempty" doc:"the run of the script asked for with the create"`
	}
}

func (s *Server) registerVMs() {
	tags := []string{"vms"}
	type listVMs struct {
		PageInput
		Owner string `query:"owner" doc:"admins: only this user's VMs"`
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "listVMs", Method: http.MethodGet, Path: "/v1/vms", Tags: tags, Summary: "List the caller's VMs (admins: all)",
	}, func(ctx context.Context, in *listVMs) (*struct{ Body Page[model.VM] }, error) {
		p := principal(ctx)
		owner := in.Owner
		if !p.Admin() {
			owner = p.UserID
		}
		page, err := listObjects[model.VM](ctx, s.st, store.KindVM, store.ListOptions{Owner: owner, After: in.After, Limit: in.Limit}, nil)
		return &struct{ Body Page[model.VM] }{page}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getVM", Method: http.MethodGet, Path: "/v1/vms/{id}", Tags: tags, Summary: "Get a VM",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body model.VM }, error) {
		vm, _, err := s.vm(ctx, s.st, in.ID)
		return &struct{ Body model.VM }{vm}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createVM", Method: http.MethodPost, Path: "/v1/vms", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Create a VM from an image",
		Description: "Starts a vm.create task: place the VM, allocate its address, clone the image, prepare the network port, define and start it. Send an Idempotency-Key to make retries safe.",
	}, s.createVM)

	s.vmTask(tags, "deleteVM", http.MethodDelete, "/v1/vms/{id}", "Delete a VM and everything it holds", flow.KindVMDelete)
	s.vmTask(tags, "startVM", http.MethodPost, "/v1/vms/{id}/start", "Start a VM", flow.KindVMStart)
	s.vmTask(tags, "stopVM", http.MethodPost, "/v1/vms/{id}/stop", "Stop a VM", flow.KindVMStop)

	type resize struct {
		IDInput
		Body struct {
			CPUs      int   `json:"cpus,omitempty" minimum:"0" maximum:"256"`
			MemoryMiB int64 `json:"memory_mib,omitempty" minimum:"0" maximum:"4194304"`
			DiskGiB   int64 `json:"disk_gib,omitempty" minimum:"0" maximum:"65536" doc:"disks only grow"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "resizeVM", Method: http.MethodPost, Path: "/v1/vms/{id}/resize", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary: "Change a VM's CPUs, memory or disk size",
	}, func(ctx context.Context, in *resize) (*VMTaskOutput, error) {
		return s.submitVM(ctx, in.ID, flow.KindVMResize, func(vm model.VM, input *flow.VMInput) error {
			if in.Body.DiskGiB != 0 && in.Body.DiskGiB < vm.DiskGiB {
				return field("body.disk_gib", virtplane.Errorf(virtplane.ErrInvalidArgument, "disk_gib %d is below the current %d: disks only grow", in.Body.DiskGiB, vm.DiskGiB))
			}
			if in.Body.CPUs == 0 && in.Body.MemoryMiB == 0 && in.Body.DiskGiB == 0 {
				return field("body", virtplane.Errorf(virtplane.ErrInvalidArgument, "nothing to change"))
			}
			input.CPUs, input.MemoryMiB, input.DiskGiB = in.Body.CPUs, in.Body.MemoryMiB, in.Body.DiskGiB
			return nil
		})
	})
	s.registerVMOps(tags)
	s.registerDiskMoves(tags)
	s.registerBackups(tags)
	s.registerImageFromVM(tags)
	s.registerClones(tags)
	s.registerDisks(tags)
}

// registerClones serves full clones of VMs.
func (s *Server) registerClones(tags []string) {
	type clone struct {
		IDInput
		IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"as for a create"`
		Body           struct {
			Name string `json:"name" minLength:"1" maxLength:"63" doc:"the new VM's name"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "cloneVM", Method: http.MethodPost, Path: "/v1/vms/{id}/clone", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Make a new VM with a full copy of a stopped VM's disks",
		Description: "A create (vm.create) whose disks are full, independent copies of the source's (root and data disks), in the source's storages on the source's node; the new VM has its own name, address and cloud-init identity. Quotas count it like any create.",
	}, func(ctx context.Context, in *clone) (*VMTaskOutput, error) {
		src, _, err := s.vm(ctx, s.st, in.ID)
		if err != nil {
			return nil, problem(err)
		}
		if src.State != model.VMStopped {
			return nil, problem(field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: stop it to clone it", src.ID, src.State)))
		}
		b := VMCreateBody{Name: in.Body.Name, ClusterID: src.ClusterID, ImageID: src.ImageID, PoolID: src.PoolID, CPUs: src.CPUs,
			MemoryMiB: src.MemoryMiB, DiskGiB: src.DiskGiB, SSHKeys: src.SSHKeys, Limits: src.Limits, Console: src.Console,
			Storage: src.Storage, Tags: src.Tags, Owner: src.Owner, AntiAffinity: src.AntiAffinity}
		for _, d := range src.Disks { // each copied, in its storage
			b.Disks = append(b.Disks, DiskRequest{SizeGiB: d.SizeGiB, Storage: d.Storage})
		}
		return s.createVMOf(ctx, &VMCreateInput{IdempotencyKey: in.IdempotencyKey, Body: b}, &src)
	})
}

// vm reads a VM the caller may see; another user's VM is reported as not
// found, so that IDs of others' objects do not leak.
func (s *Server) vm(ctx context.Context, r store.Reader, id string) (model.VM, store.Object, error) {
	vm, o, err := getObject[model.VM](ctx, r, store.KindVM, id, "path.id")
	if err != nil {
		return vm, o, err
	}
	if !principal(ctx).CanAccess(o.Owner) {
		return model.VM{}, store.Object{}, field("path.id", virtplane.Errorf(virtplane.ErrNotFound, "vm %q", id))
	}
	return vm, o, nil
}

func (s *Server) vmTask(tags []string, opID, method, path, summary, kind string) {
	huma.Register(s.api, huma.Operation{
		OperationID: opID, Method: method, Path: path, Tags: tags, Summary: summary, DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *IDInput) (*VMTaskOutput, error) {
		return s.submitVM(ctx, in.ID, kind, func(model.VM, *flow.VMInput) error { return nil })
	})
}

// submitVM starts a task on a VM the caller may change, in one transaction
// with the VM's task reference.
func (s *Server) submitVM(ctx context.Context, id, kind string, prepare func(model.VM, *flow.VMInput) error) (*VMTaskOutput, error) {
	out := &VMTaskOutput{}
	submit := func(tx store.Tx) error {
		vm, o, err := s.vm(ctx, tx, id)
		if err != nil {
			return err
		}
		if vm.State == model.VMDeleting && kind != flow.KindVMDelete {
			return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s is being deleted", id))
		}
		input := flow.VMInput{VMID: id}
		if err := prepare(vm, &input); err != nil {
			return err
		}
		if next, grows := grown(kind, vm, input); grows {
			if err := chargeQuota(ctx, tx, &vm, next); err != nil {
				return err
			}
		}
		t, _, err := s.cfg.Tasks.SubmitTx(ctx, tx, tasks.Submission{
			Kind: kind, Owner: principal(ctx).UserID, Target: "vm/" + id, Resources: []string{"vm/" + id}, Input: input,
		})
		if err != nil {
			return err
		}
		vm.TaskID = t.ID
		if kind == flow.KindVMDelete {
			vm.State = model.VMDeleting
		}
		if o.Data, err = encode(vm); err != nil {
			return err
		}
		if err := tx.UpdateObject(ctx, &o); err != nil {
			return err
		}
		out.Body.VM, out.Body.Task = vm, viewTask(t)
		return nil
	}
	err := withQuotaRetry(func() error { return s.st.Update(ctx, submit) })
	if err != nil {
		return nil, problem(err)
	}
	s.cfg.Tasks.Wake()
	s.publish("vm", "changed", id, out.Body.VM.Owner, out.Body.VM.State)
	s.publish("task", "created", out.Body.Task.ID, out.Body.VM.Owner, out.Body.Task.State)
	return out, nil
}

// repeatedCreate answers a create whose idempotency key made task t: its
// VM, or the VM's ID alone when it was deleted since.
func (s *Server) repeatedCreate(ctx context.Context, r store.Reader, owner string, t store.Task) (*VMTaskOutput, error) {
	out := &VMTaskOutput{}
	vmID := strings.TrimPrefix(t.Target, "vm/")
	o, err := r.GetObject(ctx, store.KindVM, vmID)
	var vm model.VM
	if err == nil {
		vm, err = decode[model.VM](o)
	} else if errors.Is(err, virtplane.ErrNotFound) {
		vm, err = model.VM{ID: vmID, Owner: owner, State: model.VMDeleting}, nil
	}
	if err != nil {
		return nil, problem(err)
	}
	out.Body.VM, out.Body.Task = vm, viewTask(s.cfg.Tasks.Live(t))
	return out, nil
}

func (s *Server) createVM(ctx context.Context, in *VMCreateInput) (*VMTaskOutput, error) {
	return s.createVMOf(ctx, in, nil)
}

// createVMOf creates a VM: of its image, or, with src, a full copy of the
// stopped VM src's disk (a clone, placed on src's node).
func (s *Server) createVMOf(ctx context.Context, in *VMCreateInput, src *model.VM) (*VMTaskOutput, error) {
	p := principal(ctx)
	b := in.Body
	owner := p.UserID
	if b.Owner != "" && b.Owner != p.UserID {
		if !p.Admin() {
			return nil, problem(field("body.owner", virtplane.Errorf(virtplane.ErrPermissionDenied, "only admins create VMs for others")))
		}
		if _, err := s.st.GetObject(ctx, store.KindUser, b.Owner); err != nil {
			return nil, problem(field("body.owner", err))
		}
		owner = b.Owner
	}
	if err := model.ValidName("name", b.Name); err != nil {
		return nil, problem(field("body.name", err))
	}
	for i, k := range b.SSHKeys {
		if strings.ContainsAny(k, "\n\r") || !strings.HasPrefix(k, "ssh-") && !strings.HasPrefix(k, "ecdsa-") {
			return nil, problem(field("body.ssh_keys["+itoa(i)+"]", virtplane.Errorf(virtplane.ErrInvalidArgument, "not an OpenSSH public key")))
		}
	}
	out := &VMTaskOutput{}
	// A repeated order returns what the first made.
	if in.IdempotencyKey != "" {
		if t, err := s.st.TaskByIdempotencyKey(ctx, owner, in.IdempotencyKey); err == nil {
			return s.repeatedCreate(ctx, s.st, owner, t)
		} else if !errors.Is(err, virtplane.ErrNotFound) {
			return nil, problem(err)
		}
	}
	// The references are checked on the read pool, before the write
	// transaction, which keeps the single writer to writing. One deleted in
	// between fails the create task, which then leaves nothing behind.
	cluster, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, b.ClusterID, "body.cluster_id")
	if err != nil {
		return nil, problem(err)
	}
	img, _, err := getObject[model.Image](ctx, s.st, store.KindImage, b.ImageID, "body.image_id")
	if err != nil {
		return nil, problem(err)
	}
	if img.State == model.ImageDeleting {
		return nil, problem(field("body.image_id", virtplane.Errorf(virtplane.ErrConflict, "image %s is being deleted", img.ID)))
	}
	pool, _, err := getObject[model.IPPool](ctx, s.st, store.KindPool, b.PoolID, "body.pool_id")
	if err != nil {
		return nil, problem(err)
	}
	if !slices.Contains(pool.ClusterIDs, cluster.ID) {
		return nil, problem(field("body.pool_id", virtplane.Errorf(virtplane.ErrInvalidArgument, "pool %s is not attached to cluster %s", pool.ID, cluster.ID)))
	}
	if b.DualStack {
		if err := dualStackPool(pool, cluster); err != nil {
			return nil, problem(field("body.dual_stack", err))
		}
	}
	if b.Address != "" {
		if !p.Admin() {
			return nil, problem(field("body.address", virtplane.Errorf(virtplane.ErrPermissionDenied, "only admins choose a VM's address")))
		}
		if err := addressOfPool(pool, b.Address); err != nil {
			return nil, problem(field("body.address", err))
		}
	}
	if err := validateDiskStorage(cluster, b.Storage, b.StorageTags); err != nil {
		return nil, problem(err)
	}
	disks, err := createDisks(cluster, b.Disks)
	if err != nil {
		return nil, problem(err)
	}
	if err := b.Limits.Validate(flow.DiskTargets(model.VM{Disks: disks})); err != nil {
		return nil, problem(prefixed("body.limits.", err))
	}
	if err := b.Limits.ValidateForNetwork(cluster.NetworkMode); err != nil {
		return nil, problem(prefixed("body.limits.", err))
	}
	if aa := b.AntiAffinity; aa != nil {
		if err := model.ValidName("group", aa.Group); err != nil {
			return nil, problem(field("body.anti_affinity.group", err))
		}
	}
	tpl, err := s.templateFor(ctx, b.TemplateID, cluster)
	if err != nil {
		return nil, problem(err)
	}
	console := b.Console
	if console == "" {
		console = "vnc"
	}
	vm := model.VM{
		Console: console, AntiAffinity: b.AntiAffinity,
		ID: store.NewID(), Name: b.Name, Owner: owner, ClusterID: cluster.ID, ImageID: b.ImageID, PoolID: b.PoolID,
		CPUs: b.CPUs, MemoryMiB: b.MemoryMiB, DiskGiB: b.DiskGiB, State: model.VMCreating, Addresses: []string{}, DualStack: b.DualStack,
		Storage: b.Storage, StorageTags: b.StorageTags, Disks: disks,
		Snapshots: []model.Snapshot{}, SSHKeys: b.SSHKeys, Limits: b.Limits, Created: time.Now().UTC(),
	}
	if err := s.prepareVMScripts(ctx, &vm, b); err != nil {
		return nil, problem(err)
	}
	sub := tasks.Submission{
		ID: store.NewID(), Kind: flow.KindVMCreate, Owner: owner, Target: "vm/" + vm.ID, Resources: []string{"vm/" + vm.ID},
		Input: flow.VMInput{VMID: vm.ID, UserData: b.UserData, Template: tpl, Address: b.Address}, IdempotencyKey: in.IdempotencyKey,
	}
	if src != nil {
		// The source is locked for the copy: it cannot start meanwhile.
		vm.CloneOf = src.ID
		sub.Resources = append(sub.Resources, "vm/"+src.ID)
	}
	if tpl != nil {
		vm.TemplateID, vm.TemplateVersion = tpl.ID, tpl.Version
	}
	vm.TaskID = sub.ID
	data, err := encode(vm)
	if err != nil {
		return nil, problem(err)
	}
	var created bool
	var repeated store.Task
	createTx := func(tx store.Tx) error {
		t, isNew, err := s.cfg.Tasks.SubmitTx(ctx, tx, sub)
		if err != nil {
			return err
		}
		if !isNew { // the same order, a moment ago
			repeated = t
			return nil
		}
		// VM names are unique per owner.
		if err := tx.CreateObject(ctx, &store.Object{Kind: store.KindVM, ID: vm.ID, Name: vm.Name, Owner: owner, Parent: owner, Data: data}); err != nil {
			return field("body.name", err)
		}
		// In the create's transaction: two orders cannot both take the
		// last of a quota.
		if err := chargeQuota(ctx, tx, nil, vm); err != nil {
			return err
		}
		run, err := s.submitOnCreate(ctx, tx, vm, b.Script)
		if err != nil {
			return err
		}
		if run != nil {
			out.Body.ScriptRun = &run.Run
		}
		out.Body.VM, out.Body.Task, created = vm, viewTask(t), true
		return nil
	}
	err = withQuotaRetry(func() error { return s.st.Update(ctx, createTx) })
	if err == nil && repeated.ID != "" {
		return s.repeatedCreate(ctx, s.st, owner, repeated)
	}
	if err != nil {
		return nil, problem(err)
	}
	if created {
		s.cfg.Tasks.Wake()
		s.publish("vm", "created", out.Body.VM.ID, owner, out.Body.VM.State)
		s.publish("task", "created", out.Body.Task.ID, owner, out.Body.Task.State)
	}
	return out, nil
}

package scriptrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/scripts"
)

// RunBody asks for a run of a script.
type RunBody struct {
	VMIDs   []string `json:"vm_ids,omitempty" maxItems:"256" doc:"VMs to run on (the caller's; admins: any), over SSH with the VM's script key"`
	NodeIDs []string `json:"node_ids,omitempty" maxItems:"256" doc:"nodes to run on (admins): shell through the node's connection, Ansible over SSH to ssh:// nodes"`
	Tags    []string `json:"tags,omitempty" maxItems:"32" doc:"also every running VM (admins: and node) the caller may run on that carries all of these tags; matching nothing is an error"`
	// Args are the parameters' values: data, never code.
	Args           map[string]string `json:"args,omitempty" doc:"parameter values; each reaches the script as data, whatever it holds"`
	MailResult     bool              `json:"mail_result,omitempty" doc:"mail the result, and the script's notice after a success, to the owner of the VMs (the caller when the targets are not one user's VMs)"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty" minimum:"0" maximum:"86400" doc:"per target; default the daemon's"`
}

// OnCreate asks for a run on a VM once its create task succeeded.
type OnCreate struct {
	ScriptID       string            `json:"script_id" minLength:"1" maxLength:"64"`
	Args           map[string]string `json:"args,omitempty"`
	MailResult     bool              `json:"mail_result,omitempty" doc:"mail the result and the script's notice to the VM's owner"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty" minimum:"0" maximum:"86400"`
}

// Run states are those of its task; "queued" until it starts.

// TargetResult is how a run went on one target.
type TargetResult struct {
	Target string `json:"target" doc:"the target's name in the run"`
	Kind   string `json:"kind" enum:"vm,node"`
	ID     string `json:"id"`
	Status string `json:"status" enum:"succeeded,failed,timeout,canceled,error"`
	// ExitCode is -1 when the script did not run to its end.
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout" doc:"masked: hidden values and hidden body lines are ********"`
	Stderr     string `json:"stderr"`
	Truncated  bool   `json:"truncated,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// Run is one run of a script, as stored and shown.
type Run struct {
	ID         string         `json:"id" doc:"the run's task ID as well"`
	ScriptID   string         `json:"script_id"`
	ScriptName string         `json:"script_name"`
	User       string         `json:"user" doc:"who started it"`
	State      string         `json:"state" enum:"queued,running,succeeded,failed,canceled"`
	OnCreate   bool           `json:"on_create,omitempty" doc:"started by a VM's create"`
	Targets    []TargetResult `json:"targets"`
	Error      string         `json:"error,omitempty"`
	MailTo     string         `json:"mail_to,omitempty"`
	MailID     string         `json:"mail_id,omitempty" doc:"the delivery of the result mail (GET /v1/notifications/deliveries/{id})"`
	MailError  string         `json:"mail_error,omitempty"`
	Created    time.Time      `json:"created"`
	Started    time.Time      `json:"started,omitzero"`
	Finished   time.Time      `json:"finished,omitzero"`
}

// runInput is the task's input.
type runInput struct {
	RunID    string            `json:"run_id"`
	ScriptID string            `json:"script_id"`
	User     string            `json:"user"`
	Admin    bool              `json:"admin"`
	VMs      []string          `json:"vms,omitempty"`
	Nodes    []string          `json:"nodes,omitempty"`
	Args     map[string]string `json:"args,omitempty"`
	MailTo   string            `json:"mail_to,omitempty"`
	Timeout  int               `json:"timeout_seconds,omitempty"`
	WaitSSH  int               `json:"wait_ssh_seconds,omitempty"`
	OnCreate bool              `json:"on_create,omitempty"`
}

func (in runInput) principal() auth.Principal {
	p := auth.Principal{UserID: in.User, Role: model.RoleUser}
	if in.Admin {
		p.Role = model.RoleAdmin
	}
	return p
}

// checkArgs refuses arguments the script would refuse, before a task
// exists (the run checks them again: the script may change meanwhile).
func checkArgs(sc Script, args map[string]string) error {
	ps := make([]scripts.Param, len(sc.Params))
	for i, p := range sc.Params {
		ps[i] = p.lib()
	}
	_, err := scripts.ResolveParams(ps, args, nil)
	return fieldErr("args", err)
}

// mailTo is where a run's result mail goes: the owner of the targets when
// they are one user's VMs, else the user who runs it.
func (s *Service) mailTo(ctx context.Context, user string, ts []target) (string, error) {
	owner := ""
	for _, t := range ts {
		if t.Kind != TargetVM || (owner != "" && t.Owner != owner) {
			owner = ""
			break
		}
		owner = t.Owner
	}
	if owner == "" {
		owner = user
	}
	if s.cfg.Notify == nil || !s.cfg.Notify.Mails() {
		return "", virtplane.Errorf(virtplane.ErrNotImplemented, "mail_result: this daemon has no SMTP relay configured (notify.smtp)")
	}
	o, err := s.st.GetObject(ctx, store.KindUser, owner)
	if err != nil {
		return "", err
	}
	var u model.User
	if err := json.Unmarshal(o.Data, &u); err != nil {
		return "", err
	}
	if u.Email == "" {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "mail_result: user %s has no email address (PUT /v1/users/%s/email)", u.Name, u.ID)
	}
	return u.Email, nil
}

// Submitted is a run and its task.
type Submitted struct {
	Run  Run
	Task store.Task
}

// SubmitRun checks and starts a run of script id.
func (s *Service) SubmitRun(ctx context.Context, p auth.Principal, id string, b RunBody) (Submitted, error) {
	sc, _, err := s.script(ctx, s.st, id)
	if err != nil || !sc.canRun(p) {
		return Submitted{}, virtplane.Errorf(virtplane.ErrNotFound, "script %q", id)
	}
	if err := checkArgs(sc, b.Args); err != nil {
		return Submitted{}, err
	}
	ts, err := s.selectTargets(ctx, p, sc, b, nil)
	if err != nil {
		return Submitted{}, err
	}
	in := runInput{ScriptID: sc.ID, User: p.UserID, Admin: p.Admin(), Args: b.Args, Timeout: b.TimeoutSeconds}
	for _, t := range ts {
		switch t.Kind {
		case TargetVM:
			if t.vm.State != model.VMRunning || len(t.vm.Addresses) == 0 {
				return Submitted{}, fieldErr(targetField(b, t), virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: scripts run on running VMs", t.Name, t.vm.State))
			}
			in.VMs = append(in.VMs, t.ID)
		case TargetNode:
			in.Nodes = append(in.Nodes, t.ID)
		}
	}
	if b.MailResult {
		if in.MailTo, err = s.mailTo(ctx, p.UserID, ts); err != nil {
			return Submitted{}, fieldErr("mail_result", err)
		}
	}
	var out Submitted
	err = s.st.Update(ctx, func(tx store.Tx) error {
		out, err = s.submitTx(ctx, tx, sc, in)
		return err
	})
	if err != nil {
		return Submitted{}, err
	}
	s.cfg.Tasks.Wake()
	return out, nil
}

// targetField is where the body named a target: its vm_ids entry, or tags.
func targetField(b RunBody, t target) string {
	for j, id := range b.VMIDs {
		if id == t.ID {
			return fmt.Sprintf("vm_ids[%d]", j)
		}
	}
	return "tags"
}

// CheckOnCreate checks a run asked with a VM's create, before the VM
// exists: the script, its arguments, and that the VM's tags admit it.
func (s *Service) CheckOnCreate(ctx context.Context, p auth.Principal, vm model.VM, oc OnCreate) error {
	sc, _, err := s.script(ctx, s.st, oc.ScriptID)
	if err != nil || !sc.canRun(p) {
		return fieldErr("script_id", virtplane.Errorf(virtplane.ErrNotFound, "script %q", oc.ScriptID))
	}
	if err := checkArgs(sc, oc.Args); err != nil {
		return err
	}
	if _, err := s.selectTargets(ctx, p, sc, RunBody{}, &vm); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Field = "script_id"
		}
		return err
	}
	if oc.MailResult {
		if _, err := s.mailTo(ctx, vm.Owner, []target{{Kind: TargetVM, Owner: vm.Owner}}); err != nil {
			return fieldErr("mail_result", err)
		}
	}
	return nil
}

// SubmitOnCreateTx starts, in the create's transaction, the run on a VM
// being created. Its task holds the VM's lock, so it starts when the
// create ended; a create that failed fails the run, which then says so.
func (s *Service) SubmitOnCreateTx(ctx context.Context, tx store.Tx, owner string, vm model.VM, oc OnCreate) (Submitted, error) {
	sc, _, err := s.script(ctx, tx, oc.ScriptID)
	if err != nil {
		return Submitted{}, fieldErr("script_id", err)
	}
	in := runInput{ScriptID: sc.ID, User: owner, VMs: []string{vm.ID}, Args: oc.Args, Timeout: oc.TimeoutSeconds,
		WaitSSH: int(s.cfg.BootWait / time.Second), OnCreate: true}
	if oc.MailResult {
		if in.MailTo, err = s.mailTo(ctx, owner, []target{{Kind: TargetVM, Owner: vm.Owner}}); err != nil {
			return Submitted{}, fieldErr("mail_result", err)
		}
	}
	return s.submitTx(ctx, tx, sc, in)
}

func (s *Service) submitTx(ctx context.Context, tx store.Tx, sc Script, in runInput) (Submitted, error) {
	in.RunID = store.NewID()
	resources := make([]string, 0, len(in.VMs))
	for _, id := range in.VMs {
		resources = append(resources, "vm/"+id)
	}
	target := "script/" + sc.ID
	if len(in.VMs) == 1 && len(in.Nodes) == 0 {
		target = "vm/" + in.VMs[0]
	}
	run := Run{ID: in.RunID, ScriptID: sc.ID, ScriptName: sc.Name, User: in.User, State: string(store.TaskQueued), OnCreate: in.OnCreate,
		Targets: []TargetResult{}, MailTo: in.MailTo, Created: time.Now().UTC()}
	data, err := json.Marshal(run)
	if err != nil {
		return Submitted{}, err
	}
	if err := tx.CreateObject(ctx, &store.Object{Kind: KindRun, ID: run.ID, Name: run.ID, Owner: in.User, Data: data}); err != nil {
		return Submitted{}, err
	}
	t, _, err := s.cfg.Tasks.SubmitTx(ctx, tx, tasks.Submission{ID: run.ID, Kind: KindScriptRun, Owner: in.User, Target: target, Resources: resources, Input: in})
	if err != nil {
		return Submitted{}, err
	}
	return Submitted{Run: run, Task: t}, nil
}

// GetRun returns a run p may see (its user's, or any for admins).
func (s *Service) GetRun(ctx context.Context, p auth.Principal, id string) (Run, error) {
	o, err := s.st.GetObject(ctx, KindRun, id)
	if err != nil {
		return Run{}, err
	}
	if !p.CanAccess(o.Owner) {
		return Run{}, virtplane.Errorf(virtplane.ErrNotFound, "script run %q", id)
	}
	return decode[Run](o)
}

// Runs lists the runs of p (admins: all), oldest first.
func (s *Service) Runs(ctx context.Context, p auth.Principal, after string, limit int) ([]Run, string, error) {
	if limit <= 0 {
		limit = 100
	}
	opts := store.ListOptions{After: after, Limit: limit}
	if !p.Admin() {
		opts.Owner = p.UserID
	}
	objs, err := s.st.ListObjects(ctx, KindRun, opts)
	if err != nil {
		return nil, "", err
	}
	out := make([]Run, 0, len(objs))
	for _, o := range objs {
		r, err := decode[Run](o)
		if err != nil {
			return nil, "", err
		}
		out = append(out, r)
	}
	next := ""
	if len(objs) == limit {
		next = objs[len(objs)-1].ID
	}
	return out, next, nil
}

// updateRun changes the stored run in tx.
func updateRun(ctx context.Context, tx store.Tx, id string, change func(*Run)) (Run, error) {
	o, err := tx.GetObject(ctx, KindRun, id)
	if err != nil {
		return Run{}, err
	}
	r, err := decode[Run](o)
	if err != nil {
		return r, err
	}
	change(&r)
	if o.Data, err = json.Marshal(r); err != nil {
		return r, err
	}
	return r, tx.UpdateObject(ctx, &o)
}

// runTask is the handler of a run's task.
func (s *Service) runTask(ctx context.Context, tr *tasks.Run) error {
	var in runInput
	if err := tr.Input(&in); err != nil {
		return err
	}
	started := time.Now().UTC()
	if err := s.st.Update(ctx, func(tx store.Tx) error {
		_, err := updateRun(ctx, tx, in.RunID, func(r *Run) { r.State, r.Started = string(store.TaskRunning), started })
		return err
	}); err != nil {
		return err
	}
	sc, _, err := s.script(ctx, s.st, in.ScriptID)
	if err != nil {
		return fmt.Errorf("script %s: %w", in.ScriptID, err)
	}
	if !sc.canRun(in.principal()) {
		return virtplane.Errorf(virtplane.ErrPermissionDenied, "script %s is no longer visible to the user who started the run", sc.Name)
	}
	ts, err := s.loadTargets(ctx, in)
	if err != nil {
		return err
	}
	globals, locals, err := s.valuesFor(ctx, in.User)
	if err != nil {
		return err
	}
	rs, libTargets, pins, err := s.runners(ctx, scripts.Kind(sc.Kind), ts, time.Duration(in.WaitSSH)*time.Second)
	if err != nil {
		return err
	}
	mail := &mailer{}
	opts := []scripts.ExecutorOption{scripts.WithParallel(s.cfg.Parallel), scripts.WithLogger(s.log), scripts.WithDeliverer(mail)}
	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: dispatch(rs)}, opts...)
	if err != nil {
		return err
	}
	lib := sc.lib()
	// The daemon decided who may run the script (admins: any); the
	// scripts package checks only owner and visibility.
	lib.Visibility = scripts.Everyone
	timeout := s.cfg.DefaultTimeout
	if in.Timeout > 0 {
		timeout = time.Duration(in.Timeout) * time.Second
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Kind + " " + t.Name
	}
	_ = tr.Progress(ctx, 10, fmt.Sprintf("running %s on %s", sc.Name, strings.Join(names, ", ")))
	var res scripts.Result
	log := newTaskLog(tr)
	err = tr.Step(ctx, fmt.Sprintf("run script %s on %d target(s)", sc.Name, len(ts)), tasks.NoUndo, func(ctx context.Context) error {
		log.start(ctx)
		defer log.stop()
		var err error
		res, err = ex.Run(ctx, scripts.RunRequest{Script: lib, User: in.User, Args: in.Args, Globals: globals, Locals: locals,
			Targets: libTargets, Timeout: timeout, NotifyEmail: in.MailTo, OnOutput: log.output})
		return err
	})
	if err != nil {
		return err
	}
	// What the run found is recorded also when it was canceled.
	canceled := ctx.Err() != nil
	ctx = context.WithoutCancel(ctx)
	if err := s.pinHostKeys(ctx, ts, pins); err != nil {
		s.log.Warn("pinning VM host keys", "err", err)
	}
	results := make([]TargetResult, len(res.Targets))
	var failed []string
	for i, r := range res.Targets {
		t := ts[i]
		results[i] = TargetResult{Target: r.Target, Kind: t.Kind, ID: t.ID, Status: string(r.Status), ExitCode: r.ExitCode,
			Stdout: r.Stdout, Stderr: r.Stderr, Truncated: r.Truncated, DurationMS: r.Duration.Milliseconds(), Error: r.Error}
		line := fmt.Sprintf("%s %s: %s (exit %d)", t.Kind, r.Target, r.Status, r.ExitCode)
		if r.Error != "" {
			line += ": " + r.Error
		}
		_ = tr.Log(ctx, line)
		if r.Status != scripts.Succeeded {
			failed = append(failed, fmt.Sprintf("%s %s", r.Target, describeStatus(r)))
		}
	}
	var mailID, mailErr string
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if mail.got != nil && s.cfg.Notify != nil {
			id, err := s.cfg.Notify.MailTx(ctx, tx, notify.Mail{Key: "script.mail/" + in.RunID, Owner: in.User, To: mail.got.To,
				Subject: mail.got.Subject, Body: mail.got.Body, Sensitive: true})
			if err != nil {
				mailErr = err.Error()
			}
			mailID = id
		} else if in.MailTo != "" {
			mailErr = "no mail: " + firstNonEmpty(res.DeliveryError, "this daemon sends no mail")
		}
		_, err := updateRun(ctx, tx, in.RunID, func(r *Run) { r.Targets, r.MailID, r.MailError = results, mailID, mailErr })
		return err
	})
	if err != nil {
		return err
	}
	if s.cfg.Notify != nil && mailID != "" {
		s.cfg.Notify.Wake()
	}
	if len(failed) > 0 {
		class := virtplane.ErrUnavailable
		if canceled {
			class = virtplane.ErrCanceled
		} else if allExited(res) {
			class = virtplane.ErrConflict // the script ran and said no
		}
		return virtplane.Errorf(class, "script %s failed on %d of %d target(s): %s", sc.Name, len(failed), len(res.Targets), strings.Join(failed, "; "))
	}
	return tr.SetResult(map[string]any{"run_id": in.RunID})
}

func allExited(res scripts.Result) bool {
	for _, t := range res.Targets {
		if t.Status != scripts.Succeeded && t.Status != scripts.Failed {
			return false
		}
	}
	return true
}

func describeStatus(r scripts.TargetResult) string {
	switch r.Status {
	case scripts.Failed:
		return fmt.Sprintf("exit %d", r.ExitCode)
	case scripts.Errored:
		return "error: " + r.Error
	default:
		return string(r.Status)
	}
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}

// finishRun records the run's end with its task's, in the same transaction,
// and the script.result notification with it: a run that a restart
// interrupted ends here too.
func (s *Service) finishRun(ctx context.Context, tx store.Tx, t *store.Task) error {
	var in runInput
	if err := json.Unmarshal(t.Input, &in); err != nil || in.RunID == "" {
		return nil
	}
	r, err := updateRun(ctx, tx, in.RunID, func(r *Run) {
		r.State, r.Finished = string(t.State), t.Finished.UTC()
		if t.State != store.TaskSucceeded {
			r.Error = t.Error
		}
	})
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil
	}
	if err != nil || s.cfg.Notify == nil {
		return err
	}
	var lines []string
	for _, tr := range r.Targets {
		lines = append(lines, fmt.Sprintf("%s %s: %s (exit %d)", tr.Kind, tr.Target, tr.Status, tr.ExitCode))
	}
	text := strings.Join(lines, "\n")
	if r.Error != "" {
		text = strings.TrimSpace(text + "\n" + r.Error)
	}
	targets := make([]map[string]any, len(r.Targets))
	for i, tr := range r.Targets {
		targets[i] = map[string]any{"target": tr.Target, "kind": tr.Kind, "id": tr.ID, "status": tr.Status, "exit_code": tr.ExitCode}
	}
	return s.cfg.Notify.EventTx(ctx, tx, notify.Event{Type: notify.EventScriptResult, Key: "script.result/" + r.ID, Owner: r.User,
		Subject: fmt.Sprintf("Script %s %s", r.ScriptName, r.State), Text: text, At: t.Finished,
		Data: map[string]any{"run_id": r.ID, "script_id": r.ScriptID, "script": r.ScriptName, "state": r.State, "targets": targets}})
}

// pinHostKeys records the host keys the first runs on VMs saw.
func (s *Service) pinHostKeys(ctx context.Context, ts []target, pins map[string]*hostKeyPin) error {
	for _, t := range ts {
		pin := pins[t.ID]
		if pin == nil || pin.pinned != "" || pin.observed() == "" {
			continue
		}
		key := pin.observed()
		err := s.st.Update(ctx, func(tx store.Tx) error {
			o, err := tx.GetObject(ctx, store.KindVM, t.ID)
			if err != nil {
				return err
			}
			vm, err := decode[model.VM](o)
			if err != nil || vm.SSHHostKey != "" {
				return err
			}
			vm.SSHHostKey = key
			if o.Data, err = json.Marshal(vm); err != nil {
				return err
			}
			return tx.UpdateObject(ctx, &o)
		})
		if err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
	}
	return nil
}

// mailer keeps the result mail the executor composed; the run then
// records it in the notification outbox, in the transaction that stores
// the result.
type mailer struct{ got *scripts.Delivery }

func (m *mailer) Deliver(_ context.Context, d scripts.Delivery) error {
	m.got = &d
	return nil
}

package scriptrun

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/ansible"
	"github.com/virtplane/virtplane/scripts/ssh"
	"github.com/virtplane/virtplane/storage"
)

// Target kinds.
const (
	TargetVM   = "vm"
	TargetNode = "node"
)

// target is a VM or node a run works on.
type target struct {
	Kind  string
	ID    string
	Name  string
	Owner string
	Tags  []string
	vm    model.VM
	node  model.Node
}

// VMTags are the tags of a VM as script filters see them: "vm",
// "os:OSTYPE" and "image:NAME" of its image, and its own.
func VMTags(vm model.VM, img model.Image) []string {
	tags := []string{TargetVM}
	if img.OSType != "" {
		tags = append(tags, "os:"+img.OSType)
	}
	if img.Name != "" {
		tags = append(tags, "image:"+img.Name)
	}
	return uniq(append(tags, vm.Tags...))
}

// NodeTags are the tags of a node as script filters see them: "node",
// "cluster:NAME", "virt:TYPE" and its own.
func NodeTags(n model.Node, c model.Cluster) []string {
	tags := []string{TargetNode}
	if c.Name != "" {
		tags = append(tags, "cluster:"+c.Name)
	}
	if c.VirtType != "" {
		tags = append(tags, "virt:"+c.VirtType)
	}
	return uniq(append(tags, n.Tags...))
}

func uniq(tags []string) []string {
	out := tags[:0:0]
	for _, t := range tags {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// tagger reads images and clusters once per resolution.
type tagger struct {
	r        store.Reader
	images   map[string]model.Image
	clusters map[string]model.Cluster
}

func newTagger(r store.Reader) *tagger {
	return &tagger{r: r, images: map[string]model.Image{}, clusters: map[string]model.Cluster{}}
}

func (t *tagger) vm(ctx context.Context, vm model.VM) target {
	img, ok := t.images[vm.ImageID]
	if !ok {
		if o, err := t.r.GetObject(ctx, store.KindImage, vm.ImageID); err == nil {
			img, _ = decode[model.Image](o)
		}
		t.images[vm.ImageID] = img
	}
	return target{Kind: TargetVM, ID: vm.ID, Name: vm.Name, Owner: vm.Owner, Tags: VMTags(vm, img), vm: vm}
}

func (t *tagger) node(ctx context.Context, n model.Node) target {
	c, ok := t.clusters[n.ClusterID]
	if !ok {
		if o, err := t.r.GetObject(ctx, store.KindCluster, n.ClusterID); err == nil {
			c, _ = decode[model.Cluster](o)
		}
		t.clusters[n.ClusterID] = c
	}
	return target{Kind: TargetNode, ID: n.ID, Name: n.Name, Tags: NodeTags(n, c), node: n}
}

// selectTargets resolves a run's targets as p names them (see RunBody).
// Errors name the body field at fault.
func (s *Service) selectTargets(ctx context.Context, p auth.Principal, sc Script, b RunBody, onCreate *model.VM) ([]target, error) {
	tg := newTagger(s.st)
	var out []target
	add := func(field string, t target) error {
		if slices.ContainsFunc(out, func(o target) bool { return o.Kind == t.Kind && o.ID == t.ID }) {
			return invalid(field, "%s %s: listed twice", t.Kind, t.ID)
		}
		if err := admits(sc, t); err != nil {
			return fieldErr(field, err)
		}
		out = append(out, t)
		return nil
	}
	if onCreate != nil {
		if err := add("script", tg.vm(ctx, *onCreate)); err != nil {
			return nil, err
		}
	}
	for i, id := range b.VMIDs {
		field := fmt.Sprintf("vm_ids[%d]", i)
		o, err := s.st.GetObject(ctx, store.KindVM, id)
		if err != nil || !p.CanAccess(o.Owner) {
			return nil, fieldErr(field, virtplane.Errorf(virtplane.ErrNotFound, "vm %q", id))
		}
		vm, err := decode[model.VM](o)
		if err != nil {
			return nil, err
		}
		if err := add(field, tg.vm(ctx, vm)); err != nil {
			return nil, err
		}
	}
	for i, id := range b.NodeIDs {
		field := fmt.Sprintf("node_ids[%d]", i)
		if !p.Admin() {
			return nil, fieldErr(field, virtplane.Errorf(virtplane.ErrPermissionDenied, "scripts run on nodes for admins only"))
		}
		o, err := s.st.GetObject(ctx, store.KindNode, id)
		if err != nil {
			return nil, fieldErr(field, err)
		}
		n, err := decode[model.Node](o)
		if err != nil {
			return nil, err
		}
		if err := add(field, tg.node(ctx, n)); err != nil {
			return nil, err
		}
	}
	if len(b.Tags) > 0 {
		if err := model.ValidTags("tags", b.Tags); err != nil {
			return nil, fieldErr("tags", err)
		}
		matched, admitted := 0, 0
		consider := func(t target) {
			for _, tag := range b.Tags {
				if !slices.Contains(t.Tags, tag) {
					return
				}
			}
			matched++
			if admits(sc, t) != nil || slices.ContainsFunc(out, func(o target) bool { return o.Kind == t.Kind && o.ID == t.ID }) {
				return
			}
			admitted++
			out = append(out, t)
		}
		opts := store.ListOptions{}
		if !p.Admin() {
			opts.Owner = p.UserID
		}
		vms, err := listAll[model.VM](ctx, s.st, store.KindVM, opts)
		if err != nil {
			return nil, err
		}
		for _, vm := range vms {
			if vm.State == model.VMRunning {
				consider(tg.vm(ctx, vm))
			}
		}
		if p.Admin() {
			nodes, err := listAll[model.Node](ctx, s.st, store.KindNode, store.ListOptions{})
			if err != nil {
				return nil, err
			}
			for _, n := range nodes {
				consider(tg.node(ctx, n))
			}
		}
		what := "running VM"
		if p.Admin() {
			what = "running VM or node"
		}
		switch {
		case matched == 0:
			return nil, invalid("tags", "tags %s: no %s you may run scripts on carries all of them", strings.Join(b.Tags, ", "), what)
		case admitted == 0 && len(out) == 0:
			return nil, invalid("tags", "tags %s: %d %s(s) carry them, and script %s's target filter admits none of them (%s)",
				strings.Join(b.Tags, ", "), matched, what, sc.Name, describeFilter(sc.Targets))
		}
	}
	if len(out) == 0 {
		return nil, invalid("vm_ids", "no targets: give vm_ids, node_ids (admins) or tags")
	}
	if len(out) > maxTargets {
		return nil, invalid("vm_ids", "%d targets: at most %d in one run", len(out), maxTargets)
	}
	return out, nil
}

const maxTargets = 256

// admits checks that the script may run on t: its filter, and its kind.
func admits(sc Script, t target) error {
	if !sc.Targets.lib().Matches(t.Tags) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %s (tags %s): script %s's target filter does not admit it (%s)",
			t.Kind, t.Name, strings.Join(t.Tags, ", "), sc.Name, describeFilter(sc.Targets))
	}
	switch {
	case sc.Kind == string(scripts.Ansible) && t.Kind == TargetVM:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "vm %s: Ansible playbooks run on nodes; run a shell or PowerShell script on a VM", t.Name)
	case sc.Kind == string(scripts.PowerShell) && t.Kind == TargetNode:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s: nodes run shell scripts and Ansible playbooks, not PowerShell", t.Name)
	}
	return nil
}

func describeFilter(f TargetFilter) string {
	var parts []string
	if len(f.AllOf) > 0 {
		parts = append(parts, "all of "+strings.Join(f.AllOf, ", "))
	}
	if len(f.AnyOf) > 0 {
		parts = append(parts, "any of "+strings.Join(f.AnyOf, ", "))
	}
	if len(f.NoneOf) > 0 {
		parts = append(parts, "none of "+strings.Join(f.NoneOf, ", "))
	}
	if len(parts) == 0 {
		return "any target"
	}
	return strings.Join(parts, "; ")
}

// loadTargets reads the run's targets again when it starts: what they are
// now decides where the script goes.
func (s *Service) loadTargets(ctx context.Context, in runInput) ([]target, error) {
	tg := newTagger(s.st)
	var out []target
	for _, id := range in.VMs {
		vm, err := loadObj[model.VM](ctx, s.st, store.KindVM, id)
		if err != nil {
			return nil, fmt.Errorf("vm %s: %w", id, err)
		}
		if vm.State != model.VMRunning || len(vm.Addresses) == 0 {
			why := vm.State
			if vm.Error != "" {
				why += ": " + vm.Error
			}
			return nil, virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s, not running with an address: the script does not run", vm.Name, why)
		}
		if vm.ScriptKey == "" {
			return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "vm %s was created before VMs got a script key: the daemon cannot log in to it", vm.Name)
		}
		out = append(out, tg.vm(ctx, vm))
	}
	for _, id := range in.Nodes {
		n, err := loadObj[model.Node](ctx, s.st, store.KindNode, id)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		out = append(out, tg.node(ctx, n))
	}
	// Target names go into results and Ansible inventories: the object's
	// name, made unique within the run.
	for i := range out {
		out[i].Name = uniqueName(out, i)
	}
	return out, nil
}

func uniqueName(ts []target, i int) string {
	name := ts[i].Name
	for j, t := range ts {
		if j != i && t.Name == name {
			suffix := ts[i].ID
			if len(suffix) > 8 {
				suffix = suffix[len(suffix)-8:]
			}
			return name[:min(len(name), 63-9)] + "-" + suffix
		}
	}
	return name
}

func loadObj[T any](ctx context.Context, r store.Reader, kind store.Kind, id string) (T, error) {
	o, err := r.GetObject(ctx, kind, id)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode[T](o)
}

// runners builds the runner of each target, keyed by target name.
func (s *Service) runners(ctx context.Context, kind scripts.Kind, ts []target, waitSSH time.Duration) (map[string]scripts.Runner, []scripts.Target, map[string]*hostKeyPin, error) {
	rs := map[string]scripts.Runner{}
	pins := map[string]*hostKeyPin{}
	var libTargets []scripts.Target
	for _, t := range ts {
		lt := scripts.Target{Name: t.Name, Tags: t.Tags}
		switch t.Kind {
		case TargetVM:
			addr := t.vm.Addresses[0]
			lt.Address = net.JoinHostPort(addr, "22")
			pem, err := s.keys.PrivateKeyPEM(ctx, t.ID)
			if err != nil {
				return nil, nil, nil, err
			}
			pin := &hostKeyPin{pinned: t.vm.SSHHostKey}
			r, err := ssh.New(ssh.Config{Credentials: ssh.Credentials{User: s.cfg.VMUser, PrivateKey: pem}, HostKeyCallback: pin.callback})
			if err != nil {
				return nil, nil, nil, err
			}
			pins[t.ID] = pin
			var runner scripts.Runner = r
			if waitSSH > 0 {
				runner = waitForSSH{Runner: r, wait: waitSSH}
			}
			rs[t.Name] = runner
		case TargetNode:
			r, err := s.nodeRunner(ctx, kind, t.node, &lt)
			if err != nil {
				return nil, nil, nil, err
			}
			rs[t.Name] = r
		}
		libTargets = append(libTargets, lt)
	}
	return rs, libTargets, pins, nil
}

func (s *Service) nodeRunner(ctx context.Context, kind scripts.Kind, n model.Node, lt *scripts.Target) (scripts.Runner, error) {
	if kind == scripts.Ansible {
		sa, ok, err := model.ParseSSHAddress("address", n.Address)
		if err != nil || !ok {
			return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: Ansible playbooks run on ssh:// nodes, and its address is %s", n.Name, n.Address)
		}
		if s.cfg.NodeLogin == nil {
			return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: this daemon gives Ansible no login to its nodes", n.Name)
		}
		login, err := s.cfg.NodeLogin(ctx, n)
		if err != nil {
			return nil, err
		}
		lt.Address, lt.User = net.JoinHostPort(sa.Host, strconv.Itoa(sa.Port)), sa.User
		return ansible.New(ansible.Config{User: sa.User, PrivateKeyFile: login.PrivateKeyFile, KnownHostsFile: login.KnownHostsFile, Playbook: s.cfg.AnsiblePlaybook})
	}
	if s.cfg.NodeExecutor == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: this daemon runs no commands on nodes", n.Name)
	}
	return ExecRunner{Executor: func(ctx context.Context, _ scripts.Target) (storage.Executor, error) {
		return s.cfg.NodeExecutor(ctx, n)
	}}, nil
}

// dispatch runs each target's job with that target's runner.
type dispatch map[string]scripts.Runner

func (d dispatch) Run(ctx context.Context, job scripts.Job) (int, error) {
	r, ok := d[job.Target.Name]
	if !ok {
		return -1, virtplane.Errorf(virtplane.ErrInvalidArgument, "no runner for target %s", job.Target.Name)
	}
	return r.Run(ctx, job)
}

// waitForSSH lets a VM that was just created boot: it waits until the
// VM's SSH port takes connections, at most wait, then runs.
type waitForSSH struct {
	scripts.Runner
	wait time.Duration
}

func (w waitForSSH) Run(ctx context.Context, job scripts.Job) (int, error) {
	deadline := time.Now().Add(w.wait)
	for {
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err := d.DialContext(ctx, "tcp", job.Target.Address)
		if err == nil {
			_ = c.Close()
			return w.Runner.Run(ctx, job)
		}
		if e := scripts.RunError(ctx, job.Target.Name); e != nil {
			return -1, e
		}
		if time.Now().After(deadline) {
			return -1, virtplane.Errorf(virtplane.ErrUnavailable, "vm %s: SSH at %s did not answer within %s of its start", job.Target.Name, job.Target.Address, w.wait)
		}
		select {
		case <-ctx.Done():
			return -1, scripts.RunError(ctx, job.Target.Name)
		case <-time.After(time.Second):
		}
	}
}

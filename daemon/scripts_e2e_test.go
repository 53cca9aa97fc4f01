package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/internal/smtptest"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/mail"
)

// scriptEnv is a daemon that reaches a node host (network and mount
// namespaces of its own, with libvirtd and sshd) as an ssh:// agent node
// and mails through a go-smtp server on loopback, with users alice and bob,
// a cluster "vms" of one simulated node whose VMs take their addresses from
// the guest namespaces' /30s, and a cluster "ops" whose node is that host.
type scriptEnv struct {
	srv        *daemon.Server
	st         store.Store
	url        string
	admin      *client.Client
	alice, bob *client.Client
	aliceID    string
	smtp       *smtptest.Server
	guests     []guestNet
	vms        model.Cluster
	pool       model.IPPool
	image      model.Image
	node       model.Node           // the ssh:// node
	host       *testenv.LibvirtHost // its host
}

func newScriptEnv(t *testing.T, guests int) *scriptEnv {
	t.Helper()
	ctx := t.Context()
	lv := testenv.RequireLibvirt(t)
	priv, pub := testenv.NewSSHKey(t)
	e := &scriptEnv{smtp: smtptest.Start(t), st: dbtest.SQLite(t)}
	e.host = testenv.StartLibvirtHost(t, "vpt-scripts-node", "", 0, testenv.OnUnderlay(testenv.NewUnderlay(t)),
		testenv.WithSSH(testenv.SSHLogin{AuthorizedKeys: []string{pub}}))
	var prefix string
	prefix, e.guests = guestNets(t, guests)
	dir := hostTempDir(t, "vpt-scripts-")
	srv, err := daemon.New(daemon.Config{Store: e.st, Instance: "scripts", DataDir: filepath.Join(dir, "data"),
		AgentBinary: buildAgent(t, dir), DomainType: lv.DomainType,
		Scripts: daemon.ScriptsConfig{BootWait: time.Minute},
		Notify: daemon.NotifyConfig{SMTP: &mail.Config{Host: "127.0.0.1", Port: e.smtp.Port(), From: "panel@example.test", TLS: mail.NoTLS, Timeout: 10 * time.Second},
			RetryMin: 100 * time.Millisecond, RetryMax: time.Second, Poll: 50 * time.Millisecond}})
	require.NoError(t, err)
	e.srv = srv
	e.admin = serveAdmin(t, srv)
	e.url = urlOf(t, e.admin)
	a, err := e.admin.CreateUser(ctx, "alice", "alice-password", model.RoleUser)
	require.NoError(t, err)
	_, err = e.admin.CreateUser(ctx, "bob", "bob-password", model.RoleUser)
	require.NoError(t, err)
	e.aliceID = a.ID
	for name, c := range map[string]**client.Client{"alice": &e.alice, "bob": &e.bob} {
		tok, err := client.New(e.url, "").Login(ctx, name, name+"-password")
		require.NoError(t, err)
		*c = client.New(e.url, tok)
	}
	e.vms, err = e.admin.CreateCluster(ctx, api.ClusterBody{Name: "vms", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	_, err = e.admin.AddNode(ctx, api.NodeBody{ClusterID: e.vms.ID, Name: "sim1", Address: "sim", Cores: 16, MemoryMiB: 32768, DiskGiB: 100})
	require.NoError(t, err)
	var blocks []api.BlockBody
	for i := range guests {
		blocks = append(blocks, api.BlockBody{Range: fmt.Sprintf("%s.%d/30", prefix, 4*i), Gateway: fmt.Sprintf("%s.%d", prefix, 4*i+1)})
	}
	e.pool, err = e.admin.CreatePool(ctx, api.PoolBody{Name: "guests", ClusterIDs: []string{e.vms.ID}, Blocks: blocks})
	require.NoError(t, err)
	e.image, err = e.admin.CreateImage(ctx, api.ImageBody{Name: "debian-12", OSType: "linux", Source: "/var/lib/images/debian-12.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	ops, err := e.admin.CreateCluster(ctx, api.ClusterBody{Name: "ops", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	e.node, err = e.admin.AddNode(ctx, api.NodeBody{ClusterID: ops.ID, Name: "node1", Address: "ssh://root@" + e.host.SSH.Addr,
		SSHPrivateKey: priv, HostKeyFingerprint: e.host.SSH.HostKeyFingerprint})
	require.NoError(t, err)
	return e
}

// urlOf finds the daemon's URL behind a client (the tests' serve helpers
// return the client only).
func urlOf(t *testing.T, c *client.Client) string {
	u := c.BaseURL()
	require.NotEmpty(t, u)
	return u
}

func (e *scriptEnv) vmBody(name string, tags ...string) api.VMCreateBody {
	return api.VMCreateBody{Name: name, ClusterID: e.vms.ID, ImageID: e.image.ID, PoolID: e.pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5, Tags: tags}
}

func wait(t *testing.T, c *client.Client, id string, within time.Duration) api.TaskView {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	task, err := c.WaitTask(ctx, id)
	require.NoError(t, err, "task %s did not end within %s", id, within)
	return task
}

// guestOf returns the guest namespace that holds a VM's address.
func (e *scriptEnv) guestOf(t *testing.T, vm model.VM) guestNet {
	require.Len(t, vm.Addresses, 1)
	for _, g := range e.guests {
		if g.addr == vm.Addresses[0] {
			return g
		}
	}
	t.Fatalf("vm %s has address %v, which no guest namespace holds", vm.Name, vm.Addresses)
	return guestNet{}
}

// TestScriptsRunOnVMsAndANode runs, against real sshds, a script with a
// hidden variable and a hostile parameter on two "VMs" (sshd instances in
// network namespaces of their own, reached over the addresses the daemon
// gave the VMs, logging in with the VMs' script keys) and on an ssh://
// node (a node host, through its agent). Outputs are in
// the task log with the hidden value masked; exit codes per target; the
// VM's host key is pinned and a changed one refused; a cancel kills the
// script on the VM; an Ansible playbook runs on the node.
func TestScriptsRunOnVMsAndANode(t *testing.T) {
	e := newScriptEnv(t, 2)
	ctx := t.Context()
	events := e.srv.Events.Subscribe(nil, 100000)
	defer events.Close()

	var vms []model.VM
	for _, name := range []string{"web1", "web2"} {
		vm, task, err := e.alice.CreateVM(ctx, e.vmBody(name, "web"), "")
		require.NoError(t, err)
		require.NoError(t, client.TaskError(wait(t, e.alice, task.ID, time.Minute)))
		vm, err = e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(vm.ScriptKey, "ssh-ed25519 "), "the VM has a script key: %q", vm.ScriptKey)
		vms = append(vms, vm)
	}
	// The key reached the guest's cloud-init meta-data.
	for _, vm := range vms {
		sims, err := e.st.ListObjects(ctx, store.KindSimState, store.ListOptions{})
		require.NoError(t, err)
		found := false
		for _, o := range sims {
			found = found || strings.Contains(string(o.Data), strings.Fields(vm.ScriptKey)[1])
		}
		assert.True(t, found, "vm %s's cloud-init carries its script key", vm.Name)
	}
	hostKeys := map[string]string{}
	stops := map[string]func(){}
	for _, vm := range vms {
		hostKeys[vm.ID], stops[vm.ID] = startGuestSSHD(t, e.guestOf(t, vm), vm.ScriptKey, "")
	}
	_, err := e.admin.SetNodeTags(ctx, e.node.ID, []string{"web"})
	require.NoError(t, err)

	token := fmt.Sprintf("tok-%016x", rand.Uint64())
	_, err = e.admin.CreateScriptVariable(ctx, scriptrun.VariableBody{Name: "API_TOKEN", Value: token, Scope: "global", Hidden: true})
	require.NoError(t, err)
	_, err = e.admin.CreateScriptVariable(ctx, scriptrun.VariableBody{Name: "REGION", Value: "eu", Scope: "global"})
	require.NoError(t, err)
	licence := fmt.Sprintf("LIC-%016x", rand.Uint64())
	probe, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "probe", Visibility: "everyone", Kind: "shell", BodyHidden: true,
		Body: "# licence " + licence + "\n" +
			"printf 'hello %s\\n' \"$WHO\"\n" +
			"printf 'addr %s\\n' \"$(ip -o -4 addr show scope global | awk '{print $4}' | tr '\\n' ' ')\"\n" +
			"printf 'token %s\\n' \"$API_TOKEN\"\n" +
			"printf 'region %s\\n' \"$REGION\"\n" +
			"echo warn >&2\n" +
			"exit \"$CODE\"\n",
		Params:  []scriptrun.Param{{Name: "WHO", Type: "string", Required: true}, {Name: "CODE", Type: "int", Default: "0", Min: 0, Max: 255}},
		Targets: scriptrun.TargetFilter{AllOf: []string{"web"}}})
	require.NoError(t, err)

	pwned := fmt.Sprintf("/tmp/vpt-pwned-%x", rand.Uint64())
	who := fmt.Sprintf("wörld'; touch %s; '$(touch %s)`touch %s`\"; exit 9 #", pwned, pwned, pwned)
	run, err := e.admin.RunScript(ctx, probe.ID, scriptrun.RunBody{VMIDs: []string{vms[0].ID, vms[1].ID}, NodeIDs: []string{e.node.ID},
		Args: map[string]string{"WHO": who}, TimeoutSeconds: 120})
	require.NoError(t, err)
	task := wait(t, e.admin, run.Task.ID, 2*time.Minute)
	require.NoError(t, client.TaskError(task))
	rec, err := e.admin.GetScriptRun(ctx, run.Run.ID)
	require.NoError(t, err)
	assert.Equal(t, "succeeded", rec.State)
	require.Len(t, rec.Targets, 3)
	_, err = os.Stat(pwned)
	assert.True(t, os.IsNotExist(err), "the parameter ran as code")
	for _, tr := range rec.Targets {
		assert.Equal(t, "succeeded", tr.Status, "%s: %s", tr.Target, tr.Error)
		assert.Equal(t, 0, tr.ExitCode)
		assert.Contains(t, tr.Stdout, "hello "+who+"\n", "the parameter arrives as data")
		assert.Contains(t, tr.Stdout, "token "+scripts.Mask+"\n", "the hidden variable is masked")
		assert.Contains(t, tr.Stdout, "region eu\n")
		assert.Equal(t, "warn\n", tr.Stderr)
		switch tr.Kind {
		case "vm":
			vm := vms[0]
			if tr.ID == vms[1].ID {
				vm = vms[1]
			}
			assert.Equal(t, vm.Name, tr.Target)
			assert.Contains(t, tr.Stdout, "addr "+vm.Addresses[0]+"/30 \n", "the script ran in the VM's namespace")
		case "node":
			assert.Equal(t, e.node.ID, tr.ID)
			for _, vm := range vms {
				assert.NotContains(t, tr.Stdout, vm.Addresses[0]+"/", "the node's script ran on the host, not in a guest")
			}
		}
	}
	lines, err := e.admin.GetTaskLog(ctx, run.Task.ID)
	require.NoError(t, err)
	logText := ""
	for _, l := range lines {
		logText += l.Line + "\n"
	}
	for _, target := range []string{vms[0].Name, vms[1].Name, e.node.Name} {
		assert.Contains(t, logText, "["+target+" stdout] hello "+who+"\n", "output streamed into the task log")
		assert.Contains(t, logText, "["+target+" stdout] token "+scripts.Mask+"\n")
		assert.Contains(t, logText, "["+target+" stderr] warn\n")
	}
	// Host keys were pinned at the first run.
	for _, vm := range vms {
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, hostKeys[vm.ID], got.SSHHostKey, "vm %s's host key is pinned", vm.Name)
	}

	// Exit codes per target: alice runs it on her VMs with CODE 3.
	failed, err := e.alice.RunScript(ctx, probe.ID, scriptrun.RunBody{Tags: []string{"web"}, Args: map[string]string{"WHO": "x", "CODE": "3"}})
	require.NoError(t, err)
	task = wait(t, e.alice, failed.Task.ID, 2*time.Minute)
	assert.Equal(t, "failed", task.State)
	assert.Contains(t, task.Error, "failed on 2 of 2 target(s)")
	rec, err = e.alice.GetScriptRun(ctx, failed.Run.ID)
	require.NoError(t, err)
	require.Len(t, rec.Targets, 2, "alice's tag selects her VMs, not the admin's node")
	for _, tr := range rec.Targets {
		assert.Equal(t, "failed", tr.Status)
		assert.Equal(t, 3, tr.ExitCode)
	}

	// A VM whose host key changed is refused.
	g := e.guestOf(t, vms[1])
	stops[vms[1].ID]()
	startGuestSSHD(t, g, vms[1].ScriptKey, "")
	changed, err := e.alice.RunScript(ctx, probe.ID, scriptrun.RunBody{VMIDs: []string{vms[1].ID}, Args: map[string]string{"WHO": "x"}})
	require.NoError(t, err)
	task = wait(t, e.alice, changed.Task.ID, time.Minute)
	assert.Equal(t, "failed", task.State)
	rec, err = e.alice.GetScriptRun(ctx, changed.Run.ID)
	require.NoError(t, err)
	require.Len(t, rec.Targets, 1, "task %+v run %+v", task, rec)
	assert.Equal(t, "error", rec.Targets[0].Status)
	assert.Contains(t, rec.Targets[0].Error, "host key does not match")

	// A cancel kills the script on the VM.
	marker := fmt.Sprintf("sleep 97%d.%d1", rand.IntN(10), rand.IntN(1<<24))
	sleeper, err := e.alice.CreateScript(ctx, scriptrun.ScriptBody{Name: "sleeper", Kind: "shell", Body: "echo started\n" + marker + "\necho never\n"})
	require.NoError(t, err)
	slow, err := e.alice.RunScript(ctx, sleeper.ID, scriptrun.RunBody{VMIDs: []string{vms[0].ID}})
	require.NoError(t, err)
	pattern := "[" + marker[:1] + "]" + marker[1:]
	require.Eventually(t, func() bool {
		out, err := inGuest(e.guestOf(t, vms[0]), "pgrep", "-f", pattern)
		return err == nil && strings.TrimSpace(out) != ""
	}, time.Minute, 100*time.Millisecond, "the script never started on the VM")
	_, err = e.alice.CancelTask(ctx, slow.Task.ID)
	require.NoError(t, err)
	task = wait(t, e.alice, slow.Task.ID, time.Minute)
	assert.Equal(t, "canceled", task.State)
	assert.Eventually(t, func() bool {
		_, err := inGuest(e.guestOf(t, vms[0]), "pgrep", "-f", pattern)
		return err != nil // pgrep exits 1: nothing matches
	}, 20*time.Second, 100*time.Millisecond, "the canceled script still runs on the VM")
	rec, err = e.alice.GetScriptRun(ctx, slow.Run.ID)
	require.NoError(t, err)
	assert.Equal(t, "canceled", rec.State)
	require.Len(t, rec.Targets, 1)
	assert.Equal(t, "canceled", rec.Targets[0].Status)
	assert.Equal(t, "started\n", rec.Targets[0].Stdout)

	// An Ansible playbook on the node: the parameter is data for Jinja too.
	if _, err := os.Stat("/usr/bin/ansible-playbook"); err == nil || testenv.InCI() {
		play, err := e.admin.CreateScript(ctx, scriptrun.ScriptBody{Name: "play", Kind: "ansible",
			Body:   "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: printf '%s|%s' '{{ GREETING }}' '{{ API_TOKEN }}'\n      register: out\n    - debug: var=out.stdout\n",
			Params: []scriptrun.Param{{Name: "GREETING", Type: "string"}}})
		require.NoError(t, err)
		pr, err := e.admin.RunScript(ctx, play.ID, scriptrun.RunBody{NodeIDs: []string{e.node.ID}, Args: map[string]string{"GREETING": `{{ lookup("pipe", "id") }}`}})
		require.NoError(t, err)
		task = wait(t, e.admin, pr.Task.ID, 3*time.Minute)
		rec, err = e.admin.GetScriptRun(ctx, pr.Run.ID)
		require.NoError(t, err)
		require.NoError(t, client.TaskError(task), "%+v", rec.Targets)
		assert.Contains(t, rec.Targets[0].Stdout, `"out.stdout": "{{ lookup(\"pipe\", \"id\") }}|`+scripts.Mask+`"`, "Jinja never evaluated the value")
		assert.NotContains(t, rec.Targets[0].Stdout, "uid=")
	}

	// Nothing the daemon published, logged or answered holds the secrets.
	var all strings.Builder
	for len(events.C) > 0 {
		b, _ := json.Marshal(<-events.C)
		all.Write(b)
	}
	runs, err := e.admin.ListScriptRuns(ctx, "", 100)
	require.NoError(t, err)
	b, _ := json.Marshal(runs)
	all.Write(b)
	var tasks client.Page[api.TaskView]
	require.NoError(t, e.admin.Do(ctx, "GET", "/v1/tasks", nil, &tasks))
	for _, tk := range tasks.Items {
		b, _ := json.Marshal(tk)
		all.Write(b)
		lines, err := e.admin.GetTaskLog(ctx, tk.ID)
		require.NoError(t, err)
		b, _ = json.Marshal(lines)
		all.Write(b)
	}
	assert.NotContains(t, all.String(), token)
	assert.NotContains(t, all.String(), licence)
	got, err := e.bob.GetScript(ctx, probe.ID)
	require.NoError(t, err)
	assert.Empty(t, got.Body, "bob does not read alice's hidden body")
}

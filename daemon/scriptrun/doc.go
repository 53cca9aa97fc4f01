// Package scriptrun brings the scripts package into the daemon: the script
// catalog (owned, private or visible to everyone, bodies that only their
// owner and admins read, the built-ins of scripts/builtin), global and
// local variables (hidden ones write-only), and runs as durable tasks on
// VMs and nodes.
//
// A run (task kind script.run) names its targets by ID or by tag; each must
// be admitted by the script's target filter, which sees a VM's own tags and
// "vm", "os:TYPE", "image:NAME", and a node's own tags and "node",
// "cluster:NAME", "virt:TYPE". On a VM the script goes over SSH to the VM's
// address with a key of the VM's own, derived from a seed in the store and
// authorized in the guest by cloud-init at create (VM.ScriptKey); the VM's
// host key is pinned at the first run. On a node a shell script goes
// through the executor the daemon already has for the node (ExecRunner over
// storage.Executor: the SSH connection of an ssh:// node, this host for the
// local one), an Ansible playbook over SSH to an ssh:// node. Output
// streams, masked, into the task's log; the run's record holds each
// target's exit code and output; a cancel kills the script's process group
// on every target. A VM create may ask for a run once it is up (OnCreate):
// its task waits behind the create on the VM's lock.
//
// With mail_result the result (and the script's notice after a success:
// the connection details of a database ordered with the DBaaS built-in) is
// recorded as a sensitive mail in the notification outbox (daemon/notify)
// for the owner of the VMs, and every run's end is a script.result event.
//
//	svc, _ := scriptrun.New(scriptrun.Config{Store: st, Tasks: eng, NodeExecutor: executorOf, Notify: notifier})
//	svc.Register(eng)
//	sub, err := svc.SubmitRun(ctx, caller, "builtin:dbaas", scriptrun.RunBody{VMIDs: []string{vmID},
//		Args: map[string]string{"DB_NAME": "shop", "DB_USER": "shop"}, MailResult: true})
package scriptrun

// Package scripts is a catalog and runner of user scripts for VMs and nodes:
// shell scripts for Linux, PowerShell for Windows and Ansible playbooks for
// nodes, published by an owner to themselves or to everyone, asked for
// parameters before a run, and run over SSH with results mailed to the user.
//
// The core is pure. A Script declares its parameters and where it may run
// (TargetFilter); Variables (global and local, some hidden) and the user's
// arguments are resolved and Render turns them into a Rendered script whose
// body is untouched: values reach it only as data, as single-quoted
// environment assignments in a preamble (shell, PowerShell) or as
// !unsafe-tagged extra vars (Ansible). Names are identifiers and may not be
// ones that change an interpreter's behaviour (PATH, IFS, LD_*, BASH_ENV...),
// so no value can change which commands run.
//
// Runners (ssh.Runner, ansible.Runner, fake.Runner) execute a Rendered
// script on one Target and stream its output; an Executor checks who may run
// the script where, runs it on every target, masks hidden values in the
// streamed output (also when a value is split across chunks) and returns a
// Result per target, optionally delivered by mail (scripts/mail).
//
//	s := scripts.Script{
//		Name: "hello", Owner: "alice", Visibility: scripts.Everyone, Kind: scripts.Shell,
//		Body:   "echo \"hello $WHO\"\n",
//		Params: []scripts.Param{{Name: "WHO", Type: scripts.String, Required: true}},
//	}
//	ex, _ := scripts.NewExecutor(scripts.ExecutorConfig{Runner: runner})
//	res, err := ex.Run(ctx, scripts.RunRequest{
//		Script: s, User: "bob", Args: map[string]string{"WHO": "world; rm -rf /"},
//		Targets: []scripts.Target{{Name: "vm1", Address: "192.0.2.10:22"}},
//		Timeout: time.Minute,
//	})
//	// res.Targets[0].Stdout == "hello world; rm -rf /\n"
//
// The built-in scripts (a BIRD route reflector installer, a database as a
// service) live in scripts/builtin.
//
// examples/ssh-script runs a script over SSH with a hidden variable.
package scripts

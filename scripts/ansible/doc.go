// Package ansible runs scripts.Rendered Ansible playbooks on nodes with
// ansible-playbook, against an inventory generated for the one target of
// each job. Values arrive as an extra-vars file whose every value is tagged
// !unsafe, so Jinja never evaluates a parameter: "{{ lookup('pipe', 'id') }}"
// given by a user stays that text. Host keys are checked strictly against
// the configured known_hosts file.
//
//	r, err := ansible.New(ansible.Config{User: "root", PrivateKeyFile: key, KnownHostsFile: kh})
//	code, err := r.Run(ctx, scripts.Job{Target: node, Script: rendered, Timeout: 10 * time.Minute})
//
// A playbook author still has to quote values used in shell tasks
// ("{{ name | quote }}") or, better, pass them with the command module's argv.
package ansible

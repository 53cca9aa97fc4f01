// Command vpt is the operator CLI of virtplane: it drives one or several
// daemons (contexts) through the Go client (daemon/client) alone.
//
//	vpt login http://127.0.0.1:8080 --user admin --password-stdin
//	vpt vm create --name web1 --cluster fra1 --image debian-12 --pool public --cpus 2 --memory-mib 2048 --disk-gib 20 --wait
//	vpt vm list -o yaml
//	vpt events
//
// The command groups:
//
//	login, context, whoami            sign in; the daemons vpt knows
//	cluster                           list get create update replace delete vxlan-sync rebalance [--plan] rescue template
//	node                              list get add maintenance vtep tags remove
//	storage                           drivers usage
//	pool, image                       IP pools and their blocks; OS images and their import
//	template                          list get create update delete (domain templates)
//	vm                                list get create delete start stop reboot shutdown suspend resume reset resize limits
//	                                  rescue migrate clone tags console [--ticket] move-disk image
//	vm snapshot|backup|disk           list create delete revert | list create restore delete | list add resize remove
//	vm guest                          interfaces exec set-password (the guest agent)
//	script                            list get create update delete run runs run-get
//	script var                        list get create update delete (hidden values are never shown)
//	notify                            channels deliveries delivery
//	notify subscription               list get create delete test
//	task, events                      tasks and their logs; the event stream
//	user, token, audit                users, their email and quota; your tokens; the audit log
//
// Every operation of the client's table (client.Operations) has a command:
// TestCLICoversClientOperations fails for one that has none. Objects are
// named by ID or by name (subscriptions, deliveries, runs and tasks by ID);
// -o table|json|yaml; --wait follows the task a change started. Large
// inputs come from files, - for stdin (script --file, template
// --override-file, cluster replace --file), secrets from stdin rather than
// the command line (--password-stdin, --arg-stdin, --webhook-secret-stdin:
// its first line; script var --value-file -). Exit codes tell the error
// class: see exitCodes.
package main

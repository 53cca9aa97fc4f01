// Command vpt is the operator CLI of virtplane: it drives one or several
// daemons (contexts) through the Go client (daemon/client) alone.
//
//	vpt login http://127.0.0.1:8080 --user admin --password-stdin
//	vpt vm create --name web1 --cluster fra1 --image debian-12 --pool public --cpus 2 --memory-mib 2048 --disk-gib 20 --wait
//	vpt vm list -o yaml
//	vpt events
//
// Objects may be named by ID or by name. Exit codes tell the error class:
// see exitCodes.
package main

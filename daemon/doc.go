// Package daemon is the reference daemon of virtplane, virtplaned: it wires
// the SDK packages into a control plane with a durable store, a task engine,
// a REST API with an OpenAPI document, users and tokens, an event stream and
// Prometheus metrics.
//
// The pieces live in subpackages: store (SQLite and PostgreSQL behind one
// interface), tasks (the durable task engine), auth (users, tokens, roles,
// LDAP/FreeIPA directories),
// api (the HTTP API), events, metrics, client (a Go client of the API),
// flow (what the VM tasks do), netport (the VMs' network ports), simnode
// (simulated nodes) and cmd/virtplaned (the binary). A program embeds the daemon through Server:
//
//	st, _ := sqlite.Open(ctx, "./var/virtplane.db")
//	srv, _ := daemon.New(daemon.Config{Store: st})
//	go srv.Run(ctx)
//	http.ListenAndServe("127.0.0.1:8080", srv.Handler())
package daemon

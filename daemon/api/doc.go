// Package api is the daemon's REST API: clusters, nodes, IP pools, images,
// VMs, tasks, users, tokens, quotas (quotas.go) and the audit log
// (audit.go: every mutating call, by a middleware) over JSON, described by
// an OpenAPI 3.1
// document (/openapi.json) and a documentation page rendered on the server
// from that document (/docs, no scripts, no CDN), plus the WebSocket event
// stream (/v1/events) and Prometheus metrics (/metrics).
//
// Every request but sign-in carries "Authorization: Bearer <token>". Errors
// are RFC 9457 problem details; a virtplane error class maps to one HTTP
// status in one place (status.go) and input errors name the field at fault.
// Changes are tasks: a change answers 202 with the task to poll. A field
// with a documented default may be left out of a create; PUT and PATCH
// change only the fields sent.
//
//	srv, _ := api.New(api.Config{Store: st, Tasks: eng, Auth: au, Events: bus, Metrics: m})
//	http.ListenAndServe("127.0.0.1:8080", srv.Handler())
package api

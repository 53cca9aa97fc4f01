// Package client is the Go client of the daemon's REST API: one method per
// operation of the OpenAPI document (the table in Operations, held to the
// document by a test), used by the vpt CLI, the Terraform provider, the
// daemon's tests and billing integrations (see examples/billing).
//
// Errors come back as *Problem, which wraps the virtplane error class of its
// HTTP status, so errors.Is(err, virtplane.ErrNotFound) works on the client
// side too, and Problem.Field names the request field at fault. Idempotent
// requests (GET, PUT, DELETE, and creates with an idempotency key) are
// retried when the daemon cannot be reached or answers 502-504. A change
// answers a task; Task.Wait follows it to its end, and Subscribe streams
// the daemon's events.
//
//	c := client.New("http://127.0.0.1:8080", token)
//	vm, tv, err := c.CreateVM(ctx, api.VMCreateBody{...}, "order-1234")
//	err = c.Task(tv).Wait(ctx) // nil once the VM runs; else the task's error class
//
// examples/billing sells a VM with it; the vpt CLI (daemon/cmd/vpt) and the
// Terraform provider (terraform-provider-virtplane) are built on it.
package client

// Package fake is an in-memory vmm.Driver with every capability, for tests of
// code that drives machines. It keeps state like a hypervisor would (a
// running machine cannot be deleted, a revert restores resources and run
// state), records every call, and injects faults and latencies on demand.
// It passes the same conformance suite (vmm/vmmtest) as the real drivers.
// Migrations are jobs of the fake hypervisor: HoldMigrations keeps them in
// progress (and running on when their caller goes away, like a killed
// daemon's) until ReleaseMigrations completes or AbortMigration ends them.
//
// Example:
//
//	d := fake.New()
//	d.FailNext("Start", virtplane.Errorf(virtplane.ErrUnavailable, "hypervisor down"))
//	_, _ = d.Create(ctx, spec)
//	err := d.Start(ctx, spec.Name) // the injected error
//	for _, c := range d.Calls() {
//		fmt.Println(c.Method, c.VM)
//	}
package fake

package vmm

import "reflect"

// CapabilityReporter is implemented by a driver that stands for another
// one — a client of a node agent, a wrapper that adds logging or metrics.
// Such a driver implements every optional interface so that calls can pass
// through it, and HasCapability says which of them the driver behind it
// really has. Callers do not use it themselves: As asks it.
type CapabilityReporter interface {
	// HasCapability reports whether the driver behind this one implements
	// the interface type capability (reflect.TypeFor[vmm.Migrator]()).
	HasCapability(capability reflect.Type) bool
}

// As returns d as the optional interface T (Snapshotter, Migrator, ...)
// when d has that capability: d implements T and, if d is a
// CapabilityReporter, reports T. Use it instead of a bare type assertion,
// so that a driver reached through an agent or a wrapper is judged by what
// the driver behind it can do.
//
//	if m, ok := vmm.As[vmm.Migrator](d); ok {
//		err = m.Migrate(ctx, name, target, nil)
//	}
func As[T any](d Driver) (T, bool) {
	var zero T
	t, ok := d.(T)
	if !ok {
		return zero, false
	}
	if r, ok := d.(CapabilityReporter); ok && !r.HasCapability(reflect.TypeFor[T]()) {
		return zero, false
	}
	return t, true
}

package storage

import "reflect"

// CapabilityReporter is implemented by a pool that stands for another one
// — a client of a node agent, a wrapper: it implements every optional
// interface (Resizer, Cloner, Snapshotter, Activator) so that calls can pass
// through, and HasCapability says which of them the pool behind it really
// has. Callers do not use it themselves: As asks it.
type CapabilityReporter interface {
	// HasCapability reports whether the pool behind this one implements
	// the interface type capability (reflect.TypeFor[storage.Cloner]()).
	HasCapability(capability reflect.Type) bool
}

// As returns p as the optional interface T (Resizer, Cloner, Snapshotter,
// Activator) when p has that capability: p implements T and, if p is a
// CapabilityReporter, reports T. Use it instead of a bare type assertion,
// so that a pool reached through an agent or a wrapper is judged by what the
// pool behind it can do.
//
//	if c, ok := storage.As[storage.Cloner](pool); ok {
//		v, err = c.Clone(ctx, base, name, storage.CloneLinked)
//	}
func As[T any](p Pool) (T, bool) {
	var zero T
	t, ok := p.(T)
	if !ok {
		return zero, false
	}
	if r, ok := p.(CapabilityReporter); ok && !r.HasCapability(reflect.TypeFor[T]()) {
		return zero, false
	}
	return t, true
}

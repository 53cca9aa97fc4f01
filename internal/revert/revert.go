// Package revert undoes the completed steps of a multi-step change when a
// later step fails, so that an operation is either done whole or not at all.
//
//	r := revert.New()
//	defer r.Fail()
//	vol, err := pool.Create(ctx, spec)
//	if err != nil { return err }
//	r.Add(func() { _ = pool.Delete(context.WithoutCancel(ctx), vol.Name) })
//	...
//	r.Success()
//
// Undo functions run in reverse order of registration, like defers.
package revert

import (
	"errors"
	"sync"
)

// Reverter collects undo steps. The zero value is ready to use; it is safe
// for concurrent use so that parallel steps can register their undos.
type Reverter struct {
	mu   sync.Mutex
	undo []func() error
	done bool
	errs []error
}

// New returns an empty Reverter.
func New() *Reverter { return &Reverter{} }

// Add registers an undo step that cannot fail (or whose failure is handled inside).
func (r *Reverter) Add(f func()) {
	r.AddE(func() error { f(); return nil })
}

// AddE registers an undo step whose error is collected and returned by Fail.
func (r *Reverter) AddE(f func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.undo = append(r.undo, f)
}

// Success marks the change complete: a later Fail does nothing.
func (r *Reverter) Success() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	r.undo = nil
}

// Fail runs the registered undo steps in reverse order, unless Success was
// called first, and returns the errors of the steps that failed, joined.
// It runs the steps once; later calls return the same result.
func (r *Reverter) Fail() error {
	r.mu.Lock()
	if r.done {
		err := errors.Join(r.errs...)
		r.mu.Unlock()
		return err
	}
	r.done = true
	undo := r.undo
	r.undo = nil
	r.mu.Unlock()

	var errs []error
	for i := len(undo) - 1; i >= 0; i-- {
		if err := undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	r.mu.Lock()
	r.errs = errs
	r.mu.Unlock()
	return errors.Join(errs...)
}

// Clone hands the pending undo steps to a new Reverter and clears this one,
// for a caller that finishes the change asynchronously (a task that outlives
// the request) and must keep the ability to undo it.
func (r *Reverter) Clone() *Reverter {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &Reverter{undo: r.undo}
	r.undo = nil
	r.done = true
	return c
}

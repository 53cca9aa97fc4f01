package virtplane

import (
	"errors"
	"fmt"
)

// The error classes. Every error a virtplane package returns for a condition
// a caller may want to handle wraps exactly one of these; the daemon maps them
// to HTTP status codes in one place.
var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object with that name or key exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the object is in a state that does not allow the operation
	// (a running VM cannot be deleted, a block in use cannot be removed).
	ErrConflict = errors.New("conflict")
	// ErrInvalidArgument: the input is malformed or out of range; the message
	// names the offending field or value.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: a backend (hypervisor, storage, peer) cannot be reached
	// now; the same call may succeed later.
	ErrUnavailable = errors.New("unavailable")
	// ErrResourceExhausted: no capacity is left (no node fits, pool full).
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrNotImplemented: the driver or build does not support the operation.
	ErrNotImplemented = errors.New("not implemented")
	// ErrPermissionDenied: the caller may not do this.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnauthenticated: the caller did not prove who they are.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrCanceled: the operation was canceled before it finished.
	ErrCanceled = errors.New("canceled")
	// ErrTimeout: the operation did not finish within its deadline.
	ErrTimeout = errors.New("timeout")
)

// classes lists the error classes in the order Class reports them.
var classes = [...]error{
	ErrNotFound, ErrAlreadyExists, ErrConflict, ErrInvalidArgument,
	ErrUnavailable, ErrResourceExhausted, ErrNotImplemented,
	ErrPermissionDenied, ErrUnauthenticated, ErrCanceled, ErrTimeout,
}

// Errorf formats a message and wraps class, so that errors.Is(err, class)
// holds. The class text is appended after a colon, the way %w would put it.
func Errorf(class error, format string, args ...any) error {
	return &classError{class: class, msg: fmt.Sprintf(format, args...)}
}

type classError struct {
	class error
	msg   string
}

func (e *classError) Error() string { return e.msg + ": " + e.class.Error() }
func (e *classError) Unwrap() error { return e.class }

// Class returns the error class that err wraps, or nil when it wraps none.
func Class(err error) error {
	if err == nil {
		return nil
	}
	for _, c := range classes {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}

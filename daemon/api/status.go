package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
)

// statusOf maps a virtplane error class to its HTTP status. This is the one
// place the mapping lives.
func statusOf(err error) int {
	switch virtplane.Class(err) {
	case virtplane.ErrNotFound:
		return http.StatusNotFound
	case virtplane.ErrAlreadyExists, virtplane.ErrConflict:
		return http.StatusConflict
	case virtplane.ErrInvalidArgument:
		return http.StatusUnprocessableEntity
	case virtplane.ErrUnavailable:
		return http.StatusServiceUnavailable
	case virtplane.ErrResourceExhausted:
		return http.StatusInsufficientStorage
	case virtplane.ErrNotImplemented:
		return http.StatusNotImplemented
	case virtplane.ErrPermissionDenied:
		return http.StatusForbidden
	case virtplane.ErrUnauthenticated:
		return http.StatusUnauthorized
	case virtplane.ErrCanceled:
		return http.StatusConflict
	case virtplane.ErrTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// FieldError is an error about one request field; the problem document
// names the field in its errors list ("body.name", "path.id").
type FieldError struct {
	Location string
	Err      error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ErrorDetail lets huma put the field into the problem document.
func (e *FieldError) ErrorDetail() *huma.ErrorDetail {
	return &huma.ErrorDetail{Message: e.Err.Error(), Location: e.Location}
}

// field attaches a location to an error.
func field(location string, err error) error {
	if err == nil {
		return nil
	}
	return &FieldError{Location: location, Err: err}
}

// problem turns an error into an RFC 9457 problem document.
func problem(err error) error {
	if err == nil {
		return nil
	}
	var se huma.StatusError
	if errors.As(err, &se) {
		return se
	}
	status := statusOf(err)
	m := &huma.ErrorModel{
		Title:  http.StatusText(status),
		Status: status,
		Detail: err.Error(),
	}
	if c := virtplane.Class(err); c != nil {
		m.Type = "https://virtplane.dev/problems/" + strings.ReplaceAll(c.Error(), " ", "-")
	}
	if status == http.StatusInternalServerError {
		m.Detail = "internal error"
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		m.Errors = []*huma.ErrorDetail{fe.ErrorDetail()}
	}
	return m
}

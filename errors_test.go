package virtplane_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/virtplane/virtplane"
)

func TestErrorfKeepsClassAndMessage(t *testing.T) {
	err := virtplane.Errorf(virtplane.ErrInvalidArgument, "field %q: %d out of range", "vcpus", -1)
	if !errors.Is(err, virtplane.ErrInvalidArgument) {
		t.Fatalf("errors.Is lost the class: %v", err)
	}
	if errors.Is(err, virtplane.ErrNotFound) {
		t.Fatalf("wrong class matched: %v", err)
	}
	if got, want := err.Error(), `field "vcpus": -1 out of range: invalid argument`; got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
}

func TestClass(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{nil, nil},
		{errors.New("plain"), nil},
		{fmt.Errorf("vm 7: %w", virtplane.ErrNotFound), virtplane.ErrNotFound},
		{fmt.Errorf("outer: %w", virtplane.Errorf(virtplane.ErrConflict, "running")), virtplane.ErrConflict},
		{errors.Join(context.Canceled, virtplane.ErrUnavailable), virtplane.ErrUnavailable},
	}
	for _, tt := range tests {
		if got := virtplane.Class(tt.err); got != tt.want {
			t.Errorf("Class(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

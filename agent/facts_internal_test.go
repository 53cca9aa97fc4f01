package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

type lookupFunc func(ctx context.Context, host string) ([]string, error)

func (f lookupFunc) LookupHost(ctx context.Context, host string) ([]string, error) {
	return f(ctx, host)
}

func TestCheckHostname(t *testing.T) {
	ok := lookupFunc(func(context.Context, string) ([]string, error) { return []string{"127.0.1.1"}, nil })
	assert.Empty(t, checkHostname(t.Context(), ok, "node1"))
	missing := lookupFunc(func(context.Context, string) ([]string, error) { return nil, errors.New("no such host") })
	assert.Contains(t, checkHostname(t.Context(), missing, "node1"), `hostname "node1" does not resolve on the node (no such host)`)
	empty := lookupFunc(func(context.Context, string) ([]string, error) { return nil, nil })
	assert.Contains(t, checkHostname(t.Context(), empty, "node1"), "resolves to no address")
	slow := lookupFunc(func(ctx context.Context, _ string) ([]string, error) { <-ctx.Done(); return nil, ctx.Err() })
	assert.Contains(t, checkHostname(t.Context(), slow, "node1"), "deadline exceeded", "a lookup is bounded")
}

package agent

import (
	"context"
	"errors"
	"net/netip"
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

func TestHostNetworksAndAddresses(t *testing.T) {
	assert.Contains(t, HostNetworks(), netip.MustParsePrefix("127.0.0.1/8"), "every host has lo; a mask read wrong would show here")
	assert.NotContains(t, HostAddresses(), "127.0.0.1", "loopback is no address of the node's to keep out of pools")
}

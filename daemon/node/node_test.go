package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
)

func kind(name, prefix string, open func(context.Context, node.Target) (*node.Backend, error)) node.Kind {
	return node.Kind{
		Name: name, Forms: prefix + "...",
		Parse: func(field, raw string) (any, string, bool, error) {
			rest, ok := strings.CutPrefix(raw, prefix)
			if !ok {
				return nil, "", false, nil
			}
			if rest == "bad" {
				return nil, "", true, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: bad", field, raw)
			}
			return rest, prefix + strings.ToLower(rest), true, nil
		},
		Open: open,
	}
}

func TestKinds(t *testing.T) {
	opened := func(tag string) func(context.Context, node.Target) (*node.Backend, error) {
		return func(_ context.Context, tg node.Target) (*node.Backend, error) {
			return &node.Backend{Handle: tag + ":" + tg.Address.Parsed.(string)}, nil
		}
	}
	ks, err := node.NewKinds(kind("a", "a://", opened("a")), kind("b", "b://", opened("b")),
		kind("a", "a://", opened("a2"))) // replaces the first a
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, ks.Names())

	addr, err := ks.Parse("address", "b://XY")
	require.NoError(t, err)
	assert.Equal(t, node.Address{Kind: "b", Raw: "b://xy", Parsed: "XY"}, addr, "the kind's canonical form is kept")
	b, err := ks.Open(t.Context(), node.Target{Node: model.Node{Name: "n1"}, Address: addr})
	require.NoError(t, err)
	assert.Equal(t, "b", b.Kind)
	assert.Equal(t, "b:XY", b.Handle)

	addr, err = ks.Parse("address", "a://z")
	require.NoError(t, err)
	b, err = ks.Open(t.Context(), node.Target{Address: addr})
	require.NoError(t, err)
	assert.Equal(t, "a2:z", b.Handle, "a later kind of one name replaces the earlier")

	_, err = ks.Parse("address", "a://bad")
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = ks.Parse("address", "c://q")
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "a://...")
	assert.Contains(t, err.Error(), "b://...")

	_, err = ks.Open(t.Context(), node.Target{Address: node.Address{Kind: "zz"}})
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	_, err = node.NewKinds(node.Kind{Name: "x"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)

	// Without Prepare, a kind takes no credentials and reports nothing.
	f, err := ks.Prepare(t.Context(), "n", addr, "kvm", node.Credentials{})
	require.NoError(t, err)
	assert.Zero(t, f)
	_, err = ks.Prepare(t.Context(), "n", addr, "kvm", node.Credentials{Password: "p"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)

	openErr := errors.New("boom")
	ks, err = node.NewKinds(kind("e", "e://", func(context.Context, node.Target) (*node.Backend, error) { return nil, openErr }))
	require.NoError(t, err)
	addr, err = ks.Parse("address", "e://1")
	require.NoError(t, err)
	_, err = ks.Open(t.Context(), node.Target{Address: addr})
	assert.ErrorIs(t, err, openErr)
}

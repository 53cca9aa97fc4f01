package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/model"
)

// resolve turns a reference into an ID: the reference itself when get
// finds it, else the ID of the one object list finds with that name.
func resolve[T any](ctx context.Context, kind, ref string, get func(context.Context, string) (T, error),
	list func(context.Context, client.ListOptions) (client.Page[T], error), id, name func(T) string) (string, error) {
	if ref == "" {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: give an ID or a name", kind)
	}
	if _, err := get(ctx, ref); err == nil {
		return ref, nil
	} else if !errors.Is(err, virtplane.ErrNotFound) {
		return "", err
	}
	o := client.ListOptions{Limit: 1000}
	for {
		p, err := list(ctx, o)
		if err != nil {
			return "", err
		}
		for _, it := range p.Items {
			if name(it) == ref {
				return id(it), nil
			}
		}
		if p.Next == "" {
			return "", virtplane.Errorf(virtplane.ErrNotFound, "%s %q", kind, ref)
		}
		o.After = p.Next
	}
}

func clusterID(ctx context.Context, c *client.Client, ref string) (string, error) {
	return resolve(ctx, "cluster", ref, c.GetCluster, c.ListClusters,
		func(v model.Cluster) string { return v.ID }, func(v model.Cluster) string { return v.Name })
}

func nodeID(ctx context.Context, c *client.Client, ref string) (string, error) {
	list := func(ctx context.Context, o client.ListOptions) (client.Page[model.Node], error) {
		return c.ListNodes(ctx, client.NodeListOptions{ListOptions: o})
	}
	return resolve(ctx, "node", ref, c.GetNode, list, func(v model.Node) string { return v.ID }, func(v model.Node) string { return v.Name })
}

func poolID(ctx context.Context, c *client.Client, ref string) (string, error) {
	return resolve(ctx, "pool", ref, c.GetPool, c.ListPools,
		func(v model.IPPool) string { return v.ID }, func(v model.IPPool) string { return v.Name })
}

func imageID(ctx context.Context, c *client.Client, ref string) (string, error) {
	return resolve(ctx, "image", ref, c.GetImage, c.ListImages,
		func(v model.Image) string { return v.ID }, func(v model.Image) string { return v.Name })
}

func vmID(ctx context.Context, c *client.Client, ref string) (string, error) {
	list := func(ctx context.Context, o client.ListOptions) (client.Page[model.VM], error) {
		return c.ListVMs(ctx, client.VMListOptions{ListOptions: o})
	}
	return resolve(ctx, "vm", ref, c.GetVM, list, func(v model.VM) string { return v.ID }, func(v model.VM) string { return v.Name })
}

func userID(ctx context.Context, c *client.Client, ref string) (string, error) {
	id, err := resolve(ctx, "user", ref, c.GetUser, c.ListUsers,
		func(v model.User) string { return v.ID }, func(v model.User) string { return v.Name })
	if errors.Is(err, virtplane.ErrPermissionDenied) {
		// Who may not list users may still name themselves.
		if me, merr := c.Me(ctx); merr == nil && me.Name == ref {
			return me.ID, nil
		}
	}
	return id, err
}

// complete lists the names of a kind for shell completion.
func complete[T any](a *app, list func(*client.Client, context.Context) ([]T, error), name func(T) string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		c, err := a.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		items, err := list(c, cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []string
		for _, it := range items {
			out = append(out, name(it))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// atLeastOne reports a --limit below 1 as a usage error.
func atLeastOne(cmd *cobra.Command, flag string, v int) error {
	if v < 1 {
		return usageError{fmt.Errorf("%s: --%s %d: at least 1", cmd.CommandPath(), flag, v)}
	}
	return nil
}

// need reports a missing required flag as a usage error.
func need(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			return usageError{fmt.Errorf("%s needs --%s", cmd.CommandPath(), n)}
		}
	}
	return nil
}

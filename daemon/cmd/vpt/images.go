package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/model"
)

func imageCols() []column[model.Image] {
	return []column[model.Image]{
		col("ID", func(i model.Image) string { return i.ID }),
		col("NAME", func(i model.Image) string { return i.Name }),
		col("OS", func(i model.Image) string { return i.OSType }),
		col("FORMAT", func(i model.Image) string { return i.Format }),
		col("STATE", func(i model.Image) string { return i.State }),
		col("NODES", func(i model.Image) string { return itoa(len(i.Nodes)) }),
		col("SOURCE", func(i model.Image) string { return i.Source }),
	}
}

func listImages(c *client.Client, ctx context.Context) ([]model.Image, error) {
	p, err := c.ListImages(ctx, client.ListOptions{Limit: 1000})
	return p.Items, err
}

func (a *app) imageCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Aliases: []string{"images"}, Short: "OS images VMs are cloned from"}
	done := complete(a, listImages, func(i model.Image) string { return i.Name })
	show := func(cmd *cobra.Command, c *client.Client, id string) func(context.Context) error {
		return func(ctx context.Context) error {
			img, err := c.GetImage(ctx, id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, img, imageCols()...)
		}
	}
	var b api.ImageBody
	var createWait bool
	create := &cobra.Command{
		Use: "create --name NAME --source PATH|URL [--cluster CLUSTER --wait]", Short: "Register an image; with --cluster import it into the cluster's nodes", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "name", "source"); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if b.ClusterID != "" {
				if b.ClusterID, err = clusterID(cmd.Context(), c, b.ClusterID); err != nil {
					return err
				}
			}
			img, err := c.CreateImage(cmd.Context(), b)
			if err != nil {
				return err
			}
			if img.TaskID != "" && createWait {
				if _, err := a.follow(cmd.Context(), c, api.TaskView{ID: img.TaskID}); err != nil {
					return err
				}
				return show(cmd, c, img.ID)(cmd.Context())
			}
			return printOne(cmd.OutOrStdout(), a.output, img, imageCols()...)
		},
	}
	f := create.Flags()
	f.StringVar(&b.Name, "name", "", "image name")
	f.StringVar(&b.Source, "source", "", "absolute path on the daemon's host, or an http(s) URL")
	f.StringVar(&b.OSType, "os-type", "linux", "linux or windows")
	f.StringVar(&b.Format, "format", "qcow2", "qcow2 or raw")
	f.Int64Var(&b.SizeMiB, "size-mib", 0, "size in MiB (0: as the file is)")
	f.StringVar(&b.ClusterID, "cluster", "", "import into this cluster's nodes right away")
	addWait(create, &createWait)
	var in api.ImageImportBody
	var importWait bool
	imp := &cobra.Command{
		Use: "import IMAGE --cluster CLUSTER | --node NODE", Short: "Import an image into a cluster's nodes or one node", Args: exactArgs(1, "IMAGE"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := imageID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			body := in
			if body.ClusterID != "" {
				if body.ClusterID, err = clusterID(cmd.Context(), c, body.ClusterID); err != nil {
					return err
				}
			}
			if body.NodeID != "" {
				if body.NodeID, err = nodeID(cmd.Context(), c, body.NodeID); err != nil {
					return err
				}
			}
			_, tv, err := c.ImportImage(cmd.Context(), id, body)
			if err != nil {
				return err
			}
			return a.taskResult(cmd, c, tv, importWait, show(cmd, c, id))
		},
	}
	imp.Flags().StringVar(&in.ClusterID, "cluster", "", "every node of this cluster")
	imp.Flags().StringVar(&in.NodeID, "node", "", "this node only")
	addWait(imp, &importWait)
	var delWait bool
	del := &cobra.Command{
		Use: "delete IMAGE", Short: "Delete an image no VM was cloned from", Args: exactArgs(1, "IMAGE"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := imageID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			tv, err := c.DeleteImage(cmd.Context(), id)
			if err != nil {
				return err
			}
			return a.taskResult(cmd, c, tv, delWait, func(context.Context) error {
				fmt.Fprintf(cmd.OutOrStdout(), "image %s deleted\n", args[0])
				return nil
			})
		},
	}
	addWait(del, &delWait)
	cmd.AddCommand(create, imp, del, &cobra.Command{
		Use: "list", Short: "List images", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, err := listImages(c, cmd.Context())
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items, imageCols()...)
		},
	}, &cobra.Command{
		Use: "get IMAGE", Short: "Show an image", Args: exactArgs(1, "IMAGE"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := imageID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return show(cmd, c, id)(cmd.Context())
		},
	})
	return cmd
}

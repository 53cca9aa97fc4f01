package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/model"
)

func clusterCols() []column[model.Cluster] {
	return []column[model.Cluster]{
		col("ID", func(c model.Cluster) string { return c.ID }),
		col("NAME", func(c model.Cluster) string { return c.Name }),
		col("TYPE", func(c model.Cluster) string { return c.VirtType }),
		col("STRATEGY", func(c model.Cluster) string { return c.Strategy }),
		col("NETWORK", func(c model.Cluster) string { return c.NetworkMode }),
		col("OVERCOMMIT", func(c model.Cluster) string {
			return fmt.Sprintf("cpu %g ram %g disk %g", c.CPUOvercommit, c.RAMOvercommit, c.DiskOvercommit)
		}),
	}
}

func listClusters(c *client.Client, ctx context.Context) ([]model.Cluster, error) {
	p, err := c.ListClusters(ctx, client.ListOptions{Limit: 1000})
	return p.Items, err
}

// clusterFlags binds the settings of a cluster to flags.
func clusterFlags(cmd *cobra.Command, b *api.ClusterBody, storages *[]string) {
	f := cmd.Flags()
	f.StringVar(&b.Name, "name", "", "cluster name")
	f.StringVar(&b.VirtType, "virt-type", "kvm", "kvm or lxd")
	f.StringVar(&b.Strategy, "strategy", "even", "placement: even or sequential")
	f.Float64Var(&b.CPUOvercommit, "cpu-overcommit", 1, "virtual CPUs per core")
	f.Float64Var(&b.RAMOvercommit, "ram-overcommit", 1, "memory overcommit ratio")
	f.Float64Var(&b.DiskOvercommit, "disk-overcommit", 1, "disk overcommit ratio")
	f.IntVar(&b.MaxVMs, "max-vms", 0, "VMs in the cluster at most (0: no limit)")
	f.IntVar(&b.MaxVMsPerNode, "max-vms-per-node", 0, "VMs per node at most (0: no limit)")
	f.StringVar(&b.NetworkMode, "network-mode", "bridge", "bridge, routed or vxlan")
	f.StringVar(&b.Bridge, "bridge", "", "host bridge of the VMs (bridge mode)")
	f.IntVar(&b.VNI, "vni", 0, "VxLAN network identifier (vxlan mode)")
	f.StringArrayVar(storages, "storage", nil, "a storage NAME:DRIVER[:PATH][,KEY=VALUE...] (repeatable; keys tags=a+b, default, enabled, disk_overcommit, else driver options)")
}

// parseStorages reads --storage NAME:DRIVER[:PATH][,KEY=VALUE...]: the
// keys tags (a+b), default, enabled and disk_overcommit set those fields,
// any other key is a driver option (thin_pool=tp0, portal=HOST:PORT).
func parseStorages(specs []string) ([]model.StorageRef, error) {
	var out []model.StorageRef
	for _, s := range specs {
		bad := func(why string) error {
			return usageError{fmt.Errorf("--storage %q: %s (NAME:DRIVER[:PATH][,KEY=VALUE...])", s, why)}
		}
		head, rest, _ := strings.Cut(s, ",")
		parts := strings.SplitN(head, ":", 3)
		if len(parts) < 2 {
			return nil, bad("no driver")
		}
		r := model.StorageRef{Name: parts[0], Driver: parts[1]}
		if len(parts) == 3 {
			r.Path = parts[2]
		}
		if rest != "" {
			for _, kv := range strings.Split(rest, ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, bad(fmt.Sprintf("%q is not KEY=VALUE", kv))
				}
				switch k {
				case "tags":
					r.Tags = strings.Split(v, "+")
				case "default", "enabled":
					b, err := strconv.ParseBool(v)
					if err != nil {
						return nil, bad(fmt.Sprintf("%s=%q: want true or false", k, v))
					}
					if k == "default" {
						r.Default = b
					} else {
						r.Enabled = &b
					}
				case "disk_overcommit":
					f, err := strconv.ParseFloat(v, 64)
					if err != nil {
						return nil, bad(fmt.Sprintf("disk_overcommit=%q: want a number", v))
					}
					r.DiskOvercommit = f
				default:
					if r.Options == nil {
						r.Options = map[string]string{}
					}
					r.Options[k] = v
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func (a *app) clusterCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Aliases: []string{"clusters"}, Short: "Clusters: groups of nodes with one set of placement rules"}
	done := complete(a, listClusters, func(c model.Cluster) string { return c.Name })
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List clusters", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, err := listClusters(c, cmd.Context())
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items, clusterCols()...)
		},
	}, &cobra.Command{
		Use: "get CLUSTER", Short: "Show a cluster", Args: exactArgs(1, "CLUSTER"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := clusterID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			cl, err := c.GetCluster(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, cl, clusterCols()...)
		},
	}, &cobra.Command{
		Use: "delete CLUSTER", Short: "Delete a cluster without nodes", Args: exactArgs(1, "CLUSTER"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := clusterID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if err := c.DeleteCluster(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s deleted\n", args[0])
			return nil
		},
	})
	var body api.ClusterBody
	var storages []string
	create := &cobra.Command{
		Use: "create --name NAME [flags]", Short: "Create a cluster", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "name"); err != nil {
				return err
			}
			var err error
			if body.Storages, err = parseStorages(storages); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			cl, err := c.CreateCluster(cmd.Context(), body)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, cl, clusterCols()...)
		},
	}
	clusterFlags(create, &body, &storages)
	var upd api.ClusterBody
	var updStorages []string
	update := &cobra.Command{
		Use: "update CLUSTER [flags]", Short: "Change a cluster's settings (the flags given; the rest stays)", Args: exactArgs(1, "CLUSTER"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := clusterID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			cur, err := c.GetCluster(cmd.Context(), id)
			if err != nil {
				return err
			}
			b := api.ClusterBody{Name: cur.Name, VirtType: cur.VirtType, Strategy: cur.Strategy, CPUOvercommit: cur.CPUOvercommit,
				RAMOvercommit: cur.RAMOvercommit, DiskOvercommit: cur.DiskOvercommit, MaxVMs: cur.MaxVMs, MaxVMsPerNode: cur.MaxVMsPerNode,
				NetworkMode: cur.NetworkMode, Bridge: cur.Bridge, VNI: cur.VNI, Storages: cur.Storages}
			f := cmd.Flags()
			set := func(name string, apply func()) {
				if f.Changed(name) {
					apply()
				}
			}
			set("name", func() { b.Name = upd.Name })
			set("virt-type", func() { b.VirtType = upd.VirtType })
			set("strategy", func() { b.Strategy = upd.Strategy })
			set("cpu-overcommit", func() { b.CPUOvercommit = upd.CPUOvercommit })
			set("ram-overcommit", func() { b.RAMOvercommit = upd.RAMOvercommit })
			set("disk-overcommit", func() { b.DiskOvercommit = upd.DiskOvercommit })
			set("max-vms", func() { b.MaxVMs = upd.MaxVMs })
			set("max-vms-per-node", func() { b.MaxVMsPerNode = upd.MaxVMsPerNode })
			set("network-mode", func() { b.NetworkMode = upd.NetworkMode })
			set("bridge", func() { b.Bridge = upd.Bridge })
			set("vni", func() { b.VNI = upd.VNI })
			if f.Changed("storage") {
				if b.Storages, err = parseStorages(updStorages); err != nil {
					return err
				}
			}
			cl, err := c.UpdateCluster(cmd.Context(), id, b)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, cl, clusterCols()...)
		},
	}
	clusterFlags(update, &upd, &updStorages)
	var wait bool
	sync := &cobra.Command{
		Use: "vxlan-sync CLUSTER", Short: "Bring the flood lists of a vxlan cluster's VMs to its nodes", Args: exactArgs(1, "CLUSTER"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := clusterID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			tv, err := c.SyncClusterFlood(cmd.Context(), id)
			if err != nil {
				return err
			}
			return a.taskResult(cmd, c, tv, wait, nil)
		},
	}
	addWait(sync, &wait)
	cmd.AddCommand(create, update, sync)
	return cmd
}

func nodeCols() []column[model.Node] {
	return []column[model.Node]{
		col("ID", func(n model.Node) string { return n.ID }),
		col("NAME", func(n model.Node) string { return n.Name }),
		col("CLUSTER", func(n model.Node) string { return n.ClusterID }),
		col("ADDRESS", func(n model.Node) string { return n.Address }),
		col("STATE", func(n model.Node) string { return n.State }),
		col("CORES", func(n model.Node) string { return itoa(n.Cores) }),
		col("MEMORY_MIB", func(n model.Node) string { return itoa(n.MemoryMiB) }),
		col("DISK_GIB", func(n model.Node) string { return itoa(n.DiskGiB) }),
	}
}

func listNodes(c *client.Client, ctx context.Context) ([]model.Node, error) {
	p, err := c.ListNodes(ctx, client.NodeListOptions{ListOptions: client.ListOptions{Limit: 1000}})
	return p.Items, err
}

func (a *app) nodeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Aliases: []string{"nodes"}, Short: "Nodes: the hosts of a cluster"}
	done := complete(a, listNodes, func(n model.Node) string { return n.Name })
	// byNode runs f on the node named by the first argument.
	byNode := func(f func(cmd *cobra.Command, c *client.Client, id string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := nodeID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return f(cmd, c, id)
		}
	}
	var cluster string
	list := &cobra.Command{
		Use: "list [--cluster CLUSTER]", Short: "List nodes", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			o := client.NodeListOptions{ListOptions: client.ListOptions{Limit: 1000}}
			if cluster != "" {
				if o.ClusterID, err = clusterID(cmd.Context(), c, cluster); err != nil {
					return err
				}
			}
			p, err := c.ListNodes(cmd.Context(), o)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, p.Items, nodeCols()...)
		},
	}
	list.Flags().StringVar(&cluster, "cluster", "", "only the nodes of this cluster")
	var b api.NodeBody
	add := &cobra.Command{
		Use: "add --cluster CLUSTER --name NAME --cores N --memory-mib N --disk-gib N [--address sim]", Short: "Add a node to a cluster", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "cluster", "name", "cores", "memory-mib", "disk-gib"); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if b.ClusterID, err = clusterID(cmd.Context(), c, b.ClusterID); err != nil {
				return err
			}
			n, err := c.AddNode(cmd.Context(), b)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, n, nodeCols()...)
		},
	}
	f := add.Flags()
	f.StringVar(&b.ClusterID, "cluster", "", "cluster (ID or name)")
	f.StringVar(&b.Name, "name", "", "node name")
	f.StringVar(&b.Address, "address", "local", "local, sim, qemu+unix:///system?socket=PATH or ssh://USER@HOST[:PORT]")
	f.IntVar(&b.Cores, "cores", 0, "CPU cores")
	f.Int64Var(&b.MemoryMiB, "memory-mib", 0, "memory in MiB")
	f.Int64Var(&b.DiskGiB, "disk-gib", 0, "disk space in GiB")
	f.StringVar(&b.VTEPAddress, "vtep", "", "VxLAN underlay address (vxlan clusters)")
	_ = add.RegisterFlagCompletionFunc("cluster", complete(a, listClusters, func(c model.Cluster) string { return c.Name }))
	var off bool
	maint := &cobra.Command{
		Use: "maintenance NODE [--off]", Short: "Put a node into maintenance (it takes no new VMs), or with --off back", Args: exactArgs(1, "NODE"), ValidArgsFunction: done,
		RunE: byNode(func(cmd *cobra.Command, c *client.Client, id string) error {
			n, err := c.SetNodeMaintenance(cmd.Context(), id, !off)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, n, nodeCols()...)
		}),
	}
	maint.Flags().BoolVar(&off, "off", false, "take the node out of maintenance")
	vtep := &cobra.Command{
		Use: "vtep NODE ADDRESS", Short: "Change a node's VxLAN underlay address (empty for none)", Args: exactArgs(2, "NODE", "ADDRESS"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			return byNode(func(cmd *cobra.Command, c *client.Client, id string) error {
				n, err := c.SetNodeVTEP(cmd.Context(), id, args[1])
				if err != nil {
					return err
				}
				return printOne(cmd.OutOrStdout(), a.output, n, nodeCols()...)
			})(cmd, args)
		},
	}
	cmd.AddCommand(list, add, maint, vtep, &cobra.Command{
		Use: "get NODE", Short: "Show a node", Args: exactArgs(1, "NODE"), ValidArgsFunction: done,
		RunE: byNode(func(cmd *cobra.Command, c *client.Client, id string) error {
			n, err := c.GetNode(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, n, nodeCols()...)
		}),
	}, &cobra.Command{
		Use: "remove NODE", Aliases: []string{"delete"}, Short: "Remove a node that hosts no VM", Args: exactArgs(1, "NODE"), ValidArgsFunction: done,
		RunE: byNode(func(cmd *cobra.Command, c *client.Client, id string) error {
			if err := c.RemoveNode(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "node removed")
			return nil
		}),
	})
	return cmd
}

func poolCols() []column[model.IPPool] {
	return []column[model.IPPool]{
		col("ID", func(p model.IPPool) string { return p.ID }),
		col("NAME", func(p model.IPPool) string { return p.Name }),
		col("CLUSTERS", func(p model.IPPool) string { return join(p.ClusterIDs) }),
		col("BLOCKS", func(p model.IPPool) string {
			var s []string
			for _, b := range p.Blocks {
				x := b.Range
				if b.Gateway != "" {
					x += " gw " + b.Gateway
				}
				s = append(s, x)
			}
			return strings.Join(s, "; ")
		}),
	}
}

func listPools(c *client.Client, ctx context.Context) ([]model.IPPool, error) {
	p, err := c.ListPools(ctx, client.ListOptions{Limit: 1000})
	return p.Items, err
}

// parseBlock reads RANGE[,GATEWAY].
func parseBlock(s string) api.BlockBody {
	r, gw, _ := strings.Cut(s, ",")
	return api.BlockBody{Range: strings.TrimSpace(r), Gateway: strings.TrimSpace(gw)}
}

func (a *app) poolCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "pool", Aliases: []string{"pools", "ippool"}, Short: "IP pools: blocks of addresses VMs take theirs from"}
	done := complete(a, listPools, func(p model.IPPool) string { return p.Name })
	byPool := func(f func(cmd *cobra.Command, args []string, c *client.Client, id string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := poolID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return f(cmd, args, c, id)
		}
	}
	var name string
	var clusters, blocks []string
	create := &cobra.Command{
		Use: "create --name NAME --cluster CLUSTER --block RANGE[,GATEWAY]", Short: "Create an IP pool", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "name"); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			b := api.PoolBody{Name: name, ClusterIDs: []string{}}
			for _, cl := range clusters {
				id, err := clusterID(cmd.Context(), c, cl)
				if err != nil {
					return err
				}
				b.ClusterIDs = append(b.ClusterIDs, id)
			}
			for _, bl := range blocks {
				b.Blocks = append(b.Blocks, parseBlock(bl))
			}
			p, err := c.CreatePool(cmd.Context(), b)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, p, poolCols()...)
		},
	}
	create.Flags().StringVar(&name, "name", "", "pool name")
	create.Flags().StringArrayVar(&clusters, "cluster", nil, "a cluster whose VMs take addresses from the pool (repeatable)")
	create.Flags().StringArrayVar(&blocks, "block", nil, "a block RANGE[,GATEWAY]: a CIDR or first-last (repeatable)")
	cmd.AddCommand(create, &cobra.Command{
		Use: "list", Short: "List IP pools", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, err := listPools(c, cmd.Context())
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items, poolCols()...)
		},
	}, &cobra.Command{
		Use: "get POOL", Short: "Show an IP pool", Args: exactArgs(1, "POOL"), ValidArgsFunction: done,
		RunE: byPool(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			p, err := c.GetPool(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, p, poolCols()...)
		}),
	}, &cobra.Command{
		Use: "add-block POOL RANGE[,GATEWAY]", Short: "Add a block of addresses to a pool", Args: exactArgs(2, "POOL", "RANGE[,GATEWAY]"), ValidArgsFunction: done,
		RunE: byPool(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			p, err := c.AddPoolBlock(cmd.Context(), id, parseBlock(args[1]))
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, p, poolCols()...)
		}),
	}, &cobra.Command{
		Use: "remove-block POOL BLOCK", Short: "Remove a block (by ID or range) no address of which is in use", Args: exactArgs(2, "POOL", "BLOCK"), ValidArgsFunction: done,
		RunE: byPool(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			p, err := c.GetPool(cmd.Context(), id)
			if err != nil {
				return err
			}
			block := args[1]
			for _, b := range p.Blocks {
				if b.Range == block {
					block = b.ID
				}
			}
			if err := c.RemovePoolBlock(cmd.Context(), id, block); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "block %s removed from pool %s\n", args[1], args[0])
			return nil
		}),
	}, &cobra.Command{
		Use: "delete POOL", Short: "Delete a pool no VM uses", Args: exactArgs(1, "POOL"), ValidArgsFunction: done,
		RunE: byPool(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			if err := c.DeletePool(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pool %s deleted\n", args[0])
			return nil
		}),
	})
	return cmd
}

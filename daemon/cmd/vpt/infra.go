package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane"
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
			var p api.ClusterPatch
			f := cmd.Flags()
			for name, apply := range map[string]func(){
				"name":             func() { p.Name = &upd.Name },
				"virt-type":        func() { p.VirtType = &upd.VirtType },
				"strategy":         func() { p.Strategy = &upd.Strategy },
				"cpu-overcommit":   func() { p.CPUOvercommit = &upd.CPUOvercommit },
				"ram-overcommit":   func() { p.RAMOvercommit = &upd.RAMOvercommit },
				"disk-overcommit":  func() { p.DiskOvercommit = &upd.DiskOvercommit },
				"max-vms":          func() { p.MaxVMs = &upd.MaxVMs },
				"max-vms-per-node": func() { p.MaxVMsPerNode = &upd.MaxVMsPerNode },
				"network-mode":     func() { p.NetworkMode = &upd.NetworkMode },
				"bridge":           func() { p.Bridge = &upd.Bridge },
				"vni":              func() { p.VNI = &upd.VNI },
			} {
				if f.Changed(name) {
					apply()
				}
			}
			if f.Changed("storage") {
				st, err := parseStorages(updStorages)
				if err != nil {
					return err
				}
				if st == nil {
					st = []model.StorageRef{}
				}
				p.Storages = &st
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := clusterID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			cl, err := c.PatchCluster(cmd.Context(), id, p)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, cl, clusterCols()...)
		},
	}
	clusterFlags(update, &upd, &updStorages)
	var file string
	replace := &cobra.Command{
		Use:   "replace CLUSTER --file FILE|-",
		Short: "Set all of a cluster's settings from a JSON or YAML file (the form of cluster get -o yaml)",
		Long: "Set all of a cluster's settings from a JSON or YAML file, such as vpt cluster get CLUSTER -o yaml wrote and\n" +
			"an editor changed. The fields the daemon keeps itself (id, created, rescue, template_id) are ignored;\n" +
			"any other unknown field is an error.",
		Args: exactArgs(1, "CLUSTER"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "file"); err != nil {
				return err
			}
			text, err := a.readInput("file", file)
			if err != nil {
				return err
			}
			var b api.ClusterBody
			if err := decodeSettings("file", text, &b, "id", "created", "rescue", "template_id"); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := clusterID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			cl, err := c.UpdateCluster(cmd.Context(), id, b)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, cl, clusterCols()...)
		},
	}
	replace.Flags().StringVarP(&file, "file", "f", "", "the settings, JSON or YAML; - reads stdin")
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
	cmd.AddCommand(create, update, replace, sync, a.rebalanceCommand(done), a.rescueCommand(done), a.clusterTemplateCommand(done))
	return cmd
}

// byCluster runs f on the cluster named by the first argument.
func (a *app) byCluster(f func(cmd *cobra.Command, args []string, c *client.Client, id string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		id, err := clusterID(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		return f(cmd, args, c, id)
	}
}

func (a *app) rebalanceCommand(done cobra.CompletionFunc) *cobra.Command {
	var b api.RebalanceBody
	var plan, wait bool
	cmd := &cobra.Command{
		Use:   "rebalance CLUSTER [--plan] [--threshold 0.1] [--max-moves N] [--wait]",
		Short: "Even out a cluster's load by live migrations; with --plan only show the scheduler's plan",
		Args:  exactArgs(1, "CLUSTER"), ValidArgsFunction: done,
		PreRunE: func(cmd *cobra.Command, args []string) error { return excludes(cmd, "plan", "wait") },
		RunE: a.byCluster(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			if !plan {
				tv, err := c.Rebalance(cmd.Context(), id, b)
				if err != nil {
					return err
				}
				return a.taskResult(cmd, c, tv, wait, nil)
			}
			p, err := c.PlanRebalance(cmd.Context(), id, b)
			if err != nil {
				return err
			}
			if a.output != "table" {
				return printOne(cmd.OutOrStdout(), a.output, p)
			}
			reached := "reached"
			if !p.Reached {
				reached = "not reached"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imbalance %.2f -> %.2f in %d move(s): threshold %s\n", p.Before, p.After, len(p.Moves), reached)
			if len(p.Moves) == 0 {
				return nil
			}
			return printList(cmd.OutOrStdout(), a.output, p.Moves,
				col("VM", func(m api.MoveView) string { return m.VM }),
				col("FROM", func(m api.MoveView) string { return m.From }),
				col("TO", func(m api.MoveView) string { return m.To }))
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&plan, "plan", false, "show the plan (moves, imbalance before and after) and change nothing")
	f.Float64Var(&b.Threshold, "threshold", 0, "the imbalance to get under (0.1: the most and least loaded nodes within 10 points); 0: as even as the moves allow")
	f.IntVar(&b.MaxMoves, "max-moves", 0, "migrations at most (0: no bound)")
	addWait(cmd, &wait)
	return cmd
}

// clusterWith are the columns of a cluster and one more.
func clusterWith(header string, value func(model.Cluster) string) []column[model.Cluster] {
	return []column[model.Cluster]{
		col("ID", func(c model.Cluster) string { return c.ID }),
		col("NAME", func(c model.Cluster) string { return c.Name }),
		col(header, value),
	}
}

func (a *app) rescueCommand(done cobra.CompletionFunc) *cobra.Command {
	var r model.RescueImage
	var none bool
	cmd := &cobra.Command{
		Use:   "rescue CLUSTER (--kernel PATH [--initrd PATH] [--cmdline TEXT] | --iso IMAGE | --none)",
		Short: "Set the image a cluster's VMs boot in rescue mode: a kernel the nodes have, or an ISO image",
		Args:  exactArgs(1, "CLUSTER"), ValidArgsFunction: done,
		PreRunE: func(cmd *cobra.Command, args []string) error {
			given := cmd.Flags().Changed("kernel") || cmd.Flags().Changed("initrd") || cmd.Flags().Changed("cmdline") || cmd.Flags().Changed("iso")
			switch {
			case none && given:
				return usageError{fmt.Errorf("%s: --none takes no other flag", cmd.CommandPath())}
			case !none && !given:
				return usageError{fmt.Errorf("%s: give --kernel, --iso or --none", cmd.CommandPath())}
			}
			return nil
		},
		RunE: a.byCluster(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			body := r
			if body.ISOImageID != "" {
				var err error
				if body.ISOImageID, err = imageID(cmd.Context(), c, r.ISOImageID); err != nil {
					return err
				}
			}
			cl, err := c.SetClusterRescue(cmd.Context(), id, body)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, cl, clusterWith("RESCUE", func(c model.Cluster) string {
				switch {
				case c.Rescue == nil:
					return ""
				case c.Rescue.ISOImageID != "":
					return "iso " + c.Rescue.ISOImageID
				}
				return strings.TrimSpace("kernel " + c.Rescue.Kernel + " " + c.Rescue.Cmdline)
			})...)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&r.Kernel, "kernel", "", "absolute path of the rescue kernel on the nodes")
	f.StringVar(&r.Initrd, "initrd", "", "absolute path of its initrd on the nodes")
	f.StringVar(&r.Cmdline, "cmdline", "", "the kernel's command line")
	f.StringVar(&r.ISOImageID, "iso", "", "an image (format raw) holding a bootable ISO")
	f.BoolVar(&none, "none", false, "remove the rescue image")
	_ = cmd.RegisterFlagCompletionFunc("iso", complete(a, listImages, func(i model.Image) string { return i.Name }))
	return cmd
}

func (a *app) clusterTemplateCommand(done cobra.CompletionFunc) *cobra.Command {
	var none bool
	cmd := &cobra.Command{
		Use:   "template CLUSTER TEMPLATE | --none",
		Short: "Set the domain template of a cluster's new VMs (--none: the built-in one)",
		Args: func(cmd *cobra.Command, args []string) error {
			if none {
				return exactArgs(1, "CLUSTER")(cmd, args)
			}
			return exactArgs(2, "CLUSTER", "TEMPLATE")(cmd, args)
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return complete(a, listTemplates, func(t model.DomainTemplate) string { return t.Name })(cmd, args, s)
			}
			return done(cmd, args, s)
		},
		RunE: a.byCluster(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			tid := ""
			if !none {
				var err error
				if tid, err = templateID(cmd.Context(), c, args[1]); err != nil {
					return err
				}
			}
			cl, err := c.SetClusterTemplate(cmd.Context(), id, tid)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, cl, clusterWith("TEMPLATE", func(c model.Cluster) string { return c.TemplateID })...)
		}),
	}
	cmd.Flags().BoolVar(&none, "none", false, "new VMs get the built-in template")
	return cmd
}

func (a *app) storageCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "storage", Aliases: []string{"storages"}, Short: "Storage drivers, and the space of a cluster's storages (admins)"}
	cmd.AddCommand(&cobra.Command{
		Use: "drivers", Short: "List the storage drivers a cluster storage may use, with their options (*: required)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, err := c.StorageDrivers(cmd.Context())
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items,
				col("NAME", func(d model.StorageDriver) string { return d.Name }),
				col("SHARED", func(d model.StorageDriver) string { return strconv.FormatBool(d.Shared) }),
				col("PATH", func(d model.StorageDriver) string { return d.Path }),
				col("OPTIONS", func(d model.StorageDriver) string {
					var s []string
					for _, o := range d.Options {
						n := o.Name
						if o.Required {
							n += "*"
						}
						s = append(s, n)
					}
					return join(s)
				}))
		},
	}, &cobra.Command{
		Use: "usage CLUSTER", Short: "The space of a cluster's storages, per node for local ones", Args: exactArgs(1, "CLUSTER"),
		ValidArgsFunction: complete(a, listClusters, func(c model.Cluster) string { return c.Name }),
		RunE: a.byCluster(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			items, err := c.StorageUsage(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items,
				col("STORAGE", func(u model.StorageUsage) string { return u.Storage }),
				col("DRIVER", func(u model.StorageUsage) string { return u.Driver }),
				col("NODE", func(u model.StorageUsage) string { return u.Node }),
				col("CAPACITY", func(u model.StorageUsage) string {
					if u.CapacityBytes == 0 {
						return "" // the backend does not say
					}
					return bytesText(u.CapacityBytes)
				}),
				col("USED", func(u model.StorageUsage) string { return bytesText(u.UsedBytes) }),
				col("ALLOCATED", func(u model.StorageUsage) string { return bytesText(u.AllocatedBytes) }),
				col("VMS", func(u model.StorageUsage) string { return itoa(u.VMs) }),
				col("ERROR", func(u model.StorageUsage) string { return u.Error }))
		}),
	})
	return cmd
}

// bytesText writes a size in GiB with one decimal.
func bytesText(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

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
		// What the daemon found wrong when it added the node (a hostname
		// that does not resolve there): counted here, said in full by -o.
		col("WARNINGS", func(n model.Node) string { return itoa(len(n.Warnings)) }),
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
	var noTags bool
	tags := &cobra.Command{
		Use: "tags NODE TAG... | --none", Short: "Set a node's tags (they replace the current ones; scripts select nodes by them)", Args: minArgs(1, "NODE", "TAG..."), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			tags, err := tagArgs(cmd, args, noTags)
			if err != nil {
				return err
			}
			return byNode(func(cmd *cobra.Command, c *client.Client, id string) error {
				n, err := c.SetNodeTags(cmd.Context(), id, tags)
				if err != nil {
					return err
				}
				return printOne(cmd.OutOrStdout(), a.output, n,
					col("ID", func(n model.Node) string { return n.ID }),
					col("NAME", func(n model.Node) string { return n.Name }),
					col("TAGS", func(n model.Node) string { return join(n.Tags) }))
			})(cmd, args)
		},
	}
	tags.Flags().BoolVar(&noTags, "none", false, "remove every tag")
	cmd.AddCommand(list, add, maint, vtep, tags, &cobra.Command{
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
				if len(b.Excluded) > 0 {
					x += " exclude " + strings.Join(b.Excluded, "|")
				}
				if len(b.Reserved) > 0 {
					x += " reserve " + strings.Join(b.Reserved, "|")
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

// parseBlock reads RANGE[,GATEWAY][,exclude=A|B-C...][,reserve=A|B...]:
// the gateway by position or as gw=, exclusions (addresses, CIDRs or
// ranges) and reservations separated by "|". The daemon checks every
// part; a key vpt does not know is refused here, not dropped.
func parseBlock(s string) (api.BlockBody, error) {
	parts := strings.Split(s, ",")
	b := api.BlockBody{Range: strings.TrimSpace(parts[0])}
	for i, p := range parts[1:] {
		p = strings.TrimSpace(p)
		key, val, ok := strings.Cut(p, "=")
		if !ok {
			if i != 0 {
				return api.BlockBody{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: %q: after the gateway, give gw=, exclude= or reserve=", s, p)
			}
			key, val = "gw", p
		}
		list := func() []string {
			var out []string
			for _, v := range strings.Split(val, "|") {
				if v = strings.TrimSpace(v); v != "" {
					out = append(out, v)
				}
			}
			return out
		}
		switch key {
		case "gw", "gateway":
			b.Gateway = strings.TrimSpace(val)
		case "exclude":
			b.Excluded = append(b.Excluded, list()...)
		case "reserve":
			b.Reserved = append(b.Reserved, list()...)
		default:
			return api.BlockBody{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: unknown key %q: want gw, exclude or reserve", s, key)
		}
	}
	return b, nil
}

func dnsblCols() []column[api.DNSBLAddress] {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	return []column[api.DNSBLAddress]{
		col("ADDRESS", func(d api.DNSBLAddress) string { return d.Address }),
		col("VM", func(d api.DNSBLAddress) string { return d.VM }),
		col("LISTED", func(d api.DNSBLAddress) string { return yes(d.Listed) }),
		col("LISTINGS", func(d api.DNSBLAddress) string {
			var s []string
			for _, l := range d.Listings {
				x := l.Zone + " " + strings.Join(l.Codes, "|")
				if l.Reason != "" {
					x += " (" + l.Reason + ")"
				}
				s = append(s, x)
			}
			return strings.Join(s, "; ")
		}),
		col("ERRORS", func(d api.DNSBLAddress) string {
			var s []string
			for _, e := range d.Errors {
				s = append(s, e.Error)
			}
			return strings.Join(s, "; ")
		}),
		col("EXCLUDED", func(d api.DNSBLAddress) string { return yes(d.Excluded) }),
	}
}

// poolDNSBLCommand is pool dnsbl-check: a table of the addresses, the
// whole report with -o json or yaml.
func (a *app) poolDNSBLCommand(byPool func(func(*cobra.Command, []string, *client.Client, string) error) func(*cobra.Command, []string) error, done cobra.CompletionFunc) *cobra.Command {
	var body api.DNSBLCheckBody
	cmd := &cobra.Command{
		Use: "dnsbl-check POOL [--address A ...] [--exclude-listed]", Short: "Check the addresses VMs hold in a pool, and others, against the daemon's DNS blocklists",
		Args: exactArgs(1, "POOL"), ValidArgsFunction: done,
		RunE: byPool(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			rep, err := c.CheckPoolDNSBL(cmd.Context(), id, body)
			if err != nil {
				return err
			}
			switch a.output {
			case "json":
				return printJSON(cmd.OutOrStdout(), rep)
			case "yaml":
				return printYAML(cmd.OutOrStdout(), rep)
			}
			return printList(cmd.OutOrStdout(), a.output, rep.Addresses, dnsblCols()...)
		}),
	}
	cmd.Flags().StringArrayVar(&body.Addresses, "address", nil, "an address of the pool to check besides those VMs hold (repeatable)")
	cmd.Flags().BoolVar(&body.ExcludeListed, "exclude-listed", false, "exclude the listed addresses no VM holds from their blocks, so that they are never handed out")
	return cmd
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
		Use: "create --name NAME --cluster CLUSTER --block RANGE[,GATEWAY][,exclude=A|B-C][,reserve=A|B]", Short: "Create an IP pool", Args: exactArgs(0),
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
				blk, err := parseBlock(bl)
				if err != nil {
					return err
				}
				b.Blocks = append(b.Blocks, blk)
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
	create.Flags().StringArrayVar(&blocks, "block", nil, "a block RANGE[,GATEWAY][,exclude=A|B-C][,reserve=A|B]: a CIDR or first-last, its gateway, addresses never handed out, addresses handed out only when a create names them (repeatable)")
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
		Use: "add-block POOL RANGE[,GATEWAY][,exclude=A|B-C][,reserve=A|B]", Short: "Add a block of addresses to a pool", Args: exactArgs(2, "POOL", "BLOCK"), ValidArgsFunction: done,
		RunE: byPool(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			blk, err := parseBlock(args[1])
			if err != nil {
				return err
			}
			p, err := c.AddPoolBlock(cmd.Context(), id, blk)
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
	}, a.poolDNSBLCommand(byPool, done), &cobra.Command{
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

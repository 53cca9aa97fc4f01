package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/model"
)

func vmCols() []column[model.VM] {
	return []column[model.VM]{
		col("ID", func(v model.VM) string { return v.ID }),
		col("NAME", func(v model.VM) string { return v.Name }),
		col("STATE", func(v model.VM) string { return v.State }),
		col("CPUS", func(v model.VM) string { return itoa(v.CPUs) }),
		col("MEMORY_MIB", func(v model.VM) string { return itoa(v.MemoryMiB) }),
		col("DISK_GIB", func(v model.VM) string { return itoa(v.DiskGiB) }),
		col("ADDRESSES", func(v model.VM) string { return join(v.Addresses) }),
		col("NODE", func(v model.VM) string { return v.NodeID }),
	}
}

func listVMs(c *client.Client, ctx context.Context) ([]model.VM, error) {
	var all []model.VM
	o := client.VMListOptions{ListOptions: client.ListOptions{Limit: 1000}}
	for {
		p, err := c.ListVMs(ctx, o)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			return all, nil
		}
		o.After = p.Next
	}
}

func (a *app) vmCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Aliases: []string{"vms"}, Short: "Virtual machines and their actions"}
	done := complete(a, listVMs, func(v model.VM) string { return v.Name })
	show := func(cmd *cobra.Command, c *client.Client, id string) func(context.Context) error {
		return func(ctx context.Context) error {
			vm, err := c.GetVM(ctx, id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, vm, vmCols()...)
		}
	}
	// vmTask makes a command that starts a task on the VM named by its
	// first argument.
	// after (nil: show the VM) prints the outcome of a waited task.
	vmTaskThen := func(use, short string, nargs int, start func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error),
		after func(cmd *cobra.Command, args []string) func(context.Context) error) *cobra.Command {
		var wait bool
		names := []string{"VM"}
		for i := 1; i < nargs; i++ {
			names = append(names, "ARG")
		}
		cmd := &cobra.Command{
			Use: use, Short: short, Args: exactArgs(nargs, names...), ValidArgsFunction: done,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := a.client()
				if err != nil {
					return err
				}
				id, err := vmID(cmd.Context(), c, args[0])
				if err != nil {
					return err
				}
				tv, err := start(cmd.Context(), c, id, args)
				if err != nil {
					return err
				}
				then := show(cmd, c, id)
				if after != nil {
					then = after(cmd, args)
				}
				return a.taskResult(cmd, c, tv, wait, then)
			},
		}
		addWait(cmd, &wait)
		return cmd
	}
	vmTask := func(use, short string, nargs int, start func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error)) *cobra.Command {
		return vmTaskThen(use, short, nargs, start, nil)
	}

	var owner string
	list := &cobra.Command{
		Use: "list", Short: "List VMs (yours; admins: everyone's)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var items []model.VM
			if owner != "" {
				uid, err := userID(cmd.Context(), c, owner)
				if err != nil {
					return err
				}
				p, err := c.ListVMs(cmd.Context(), client.VMListOptions{ListOptions: client.ListOptions{Limit: 1000}, Owner: uid})
				if err != nil {
					return err
				}
				items = p.Items
			} else if items, err = listVMs(c, cmd.Context()); err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items, vmCols()...)
		},
	}
	list.Flags().StringVar(&owner, "owner", "", "admins: only this user's VMs")

	var b api.VMCreateBody
	var key, userDataFile string
	var dataDisks []string
	var wait bool
	create := &cobra.Command{
		Use:   "create --name NAME --cluster CLUSTER --image IMAGE --pool POOL --cpus N --memory-mib N --disk-gib N [--wait]",
		Short: "Create a VM from an image (placed, addressed, cloned, started)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "name", "cluster", "image", "pool", "cpus", "memory-mib", "disk-gib"); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			body := b
			if body.ClusterID, err = clusterID(ctx, c, b.ClusterID); err != nil {
				return err
			}
			if body.ImageID, err = imageID(ctx, c, b.ImageID); err != nil {
				return err
			}
			if body.PoolID, err = poolID(ctx, c, b.PoolID); err != nil {
				return err
			}
			if body.Owner != "" {
				if body.Owner, err = userID(ctx, c, b.Owner); err != nil {
					return err
				}
			}
			for _, d := range dataDisks {
				dr, err := parseDataDisk(d)
				if err != nil {
					return err
				}
				body.Disks = append(body.Disks, dr)
			}
			if userDataFile != "" {
				ud, err := os.ReadFile(userDataFile)
				if err != nil {
					return virtplane.Errorf(virtplane.ErrInvalidArgument, "--user-data-file: %v", err)
				}
				body.UserData = string(ud)
			}
			vm, tv, err := c.CreateVM(ctx, body, key)
			if err != nil {
				return err
			}
			return a.taskResult(cmd, c, tv, wait, show(cmd, c, vm.ID))
		},
	}
	f := create.Flags()
	f.StringVar(&b.Name, "name", "", "VM name")
	f.StringVar(&b.ClusterID, "cluster", "", "cluster (ID or name)")
	f.StringVar(&b.ImageID, "image", "", "image (ID or name)")
	f.StringVar(&b.PoolID, "pool", "", "IP pool (ID or name) of the VM's address")
	f.IntVar(&b.CPUs, "cpus", 0, "virtual CPUs")
	f.Int64Var(&b.MemoryMiB, "memory-mib", 0, "memory in MiB")
	f.Int64Var(&b.DiskGiB, "disk-gib", 0, "disk size in GiB")
	f.StringVar(&b.Storage, "storage", "", "the cluster storage of the root disk")
	f.StringArrayVar(&b.StorageTags, "storage-tag", nil, "the root disk's storage carries this tag (repeatable)")
	f.StringArrayVar(&dataDisks, "data-disk", nil, "a data disk GIB[@STORAGE] at vdb, vdc, ... (repeatable)")
	f.StringArrayVar(&b.SSHKeys, "ssh-key", nil, "an OpenSSH public key for cloud-init (repeatable)")
	f.StringVar(&userDataFile, "user-data-file", "", "cloud-init user data from this file")
	f.StringVar(&b.Owner, "owner", "", "admins: create the VM for this user")
	f.StringVar(&b.Address, "address", "", "admins: the VM's address, from a block of its pool (a reserved one too)")
	f.BoolVar(&b.DualStack, "dual-stack", false, "an IPv4 and an IPv6 address from the pool")
	limitFlags(f, &b.Limits)
	f.StringVar(&key, "idempotency-key", "", "a key of your choice: repeating the command with it returns the first VM")
	addWait(create, &wait)
	for flag, fn := range map[string]cobra.CompletionFunc{
		"cluster": complete(a, listClusters, func(c model.Cluster) string { return c.Name }),
		"image":   complete(a, listImages, func(i model.Image) string { return i.Name }),
		"pool":    complete(a, listPools, func(p model.IPPool) string { return p.Name }),
	} {
		_ = create.RegisterFlagCompletionFunc(flag, fn)
	}

	del := vmTaskThen("delete VM", "Delete a VM and everything it holds", 1, func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
		return c.DeleteVM(ctx, id)
	}, func(cmd *cobra.Command, args []string) func(context.Context) error {
		return func(context.Context) error {
			fmt.Fprintf(cmd.OutOrStdout(), "vm %s deleted\n", args[0])
			return nil
		}
	})
	start := vmTask("start VM", "Start a VM", 1, func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
		return c.StartVM(ctx, id)
	})
	stop := vmTask("stop VM", "Stop a VM", 1, func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
		return c.StopVM(ctx, id)
	})
	reboot := vmTask("reboot VM", "Reboot a VM", 1, func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
		return c.RebootVM(ctx, id)
	})
	var cpus int
	var mem, disk int64
	resize := vmTask("resize VM [--cpus N] [--memory-mib N] [--disk-gib N]", "Change a VM's CPUs or memory, or grow its disk", 1,
		func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
			return c.ResizeVM(ctx, id, cpus, mem, disk)
		})
	resize.Flags().IntVar(&cpus, "cpus", 0, "virtual CPUs")
	resize.Flags().Int64Var(&mem, "memory-mib", 0, "memory in MiB")
	resize.Flags().Int64Var(&disk, "disk-gib", 0, "disk size in GiB (disks only grow)")
	var lim model.Limits
	limits := vmTask("limits VM [LIMIT FLAGS]", "Set a VM's limits and port policy (the flags not given become none)", 1,
		func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
			return c.SetVMLimits(ctx, id, lim)
		})
	limitFlags(limits.Flags(), &lim)
	var rescueOff bool
	rescue := vmTask("rescue VM [--off]", "Boot a VM into rescue mode, or with --off back to its disk", 1,
		func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
			return c.RescueVM(ctx, id, !rescueOff)
		})
	rescue.Flags().BoolVar(&rescueOff, "off", false, "leave rescue mode")
	var target string
	migrate := vmTask("migrate VM [--node NODE]", "Move a VM to another node (live when it runs)", 1,
		func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
			node := ""
			if target != "" {
				var err error
				if node, err = nodeID(ctx, c, target); err != nil {
					return api.TaskView{}, err
				}
			}
			return c.MigrateVM(ctx, id, node)
		})
	migrate.Flags().StringVar(&target, "node", "", "target node; default: the scheduler's choice")

	snap := &cobra.Command{Use: "snapshot", Aliases: []string{"snapshots"}, Short: "Snapshots of a VM's disk"}
	snapCreate := vmTask("create VM NAME", "Snapshot a VM's disk", 2, func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
		return c.CreateSnapshot(ctx, id, args[1], nil)
	})
	snapDelete := vmTask("delete VM NAME", "Delete a snapshot", 2, func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
		return c.DeleteSnapshot(ctx, id, args[1])
	})
	snapRevert := vmTask("revert VM NAME", "Return a VM to a snapshot", 2, func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
		return c.RevertSnapshot(ctx, id, args[1])
	})
	snap.AddCommand(snapCreate, snapDelete, snapRevert, &cobra.Command{
		Use: "list VM", Short: "List a VM's snapshots", Args: exactArgs(1, "VM"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := vmID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			items, err := c.ListSnapshots(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items,
				col("NAME", func(s model.Snapshot) string { return s.Name }),
				col("CREATED", func(s model.Snapshot) string { return timestamp(s.Created) }))
		},
	})

	byVM := func(f func(cmd *cobra.Command, c *client.Client, id string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := vmID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return f(cmd, c, id)
		}
	}
	var moveTarget string
	moveDisk := vmTask("move-disk VM STORAGE [--disk vdX]", "Move a VM's root disk to another storage of its cluster, live when it runs (admin)", 2,
		func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
			if moveTarget != "" {
				return c.MoveVMDataDisk(ctx, id, moveTarget, args[1])
			}
			return c.MoveVMDisk(ctx, id, args[1])
		})
	moveDisk.Flags().StringVar(&moveTarget, "disk", "", "the disk that moves (vdb, ...); default the root disk")
	toImage := vmTask("image VM NAME", "Make an image of a stopped VM's disk (admin)", 2,
		func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
			_, tv, err := c.ImageFromVM(ctx, id, args[1])
			return tv, err
		})
	backup := &cobra.Command{Use: "backup", Aliases: []string{"backups"}, Short: "Backups of a VM's disk"}
	backup.AddCommand(
		vmTask("create VM STORAGE", "Back a stopped VM's disk up into a storage of its cluster", 2,
			func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
				return c.BackupVM(ctx, id, args[1])
			}),
		vmTask("restore VM BACKUP", "Put a backup back as its stopped VM's disk", 2,
			func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
				return c.RestoreBackup(ctx, id, args[1])
			}),
		vmTask("delete VM BACKUP", "Delete a backup", 2,
			func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
				return c.DeleteBackup(ctx, id, args[1])
			}),
		&cobra.Command{
			Use: "list VM", Short: "List a VM's backups", Args: exactArgs(1, "VM"), ValidArgsFunction: done,
			RunE: byVM(func(cmd *cobra.Command, c *client.Client, id string) error {
				items, err := c.ListBackups(cmd.Context(), id)
				if err != nil {
					return err
				}
				return printList(cmd.OutOrStdout(), a.output, items,
					col("ID", func(b model.Backup) string { return b.ID }),
					col("STORAGE", func(b model.Backup) string { return b.Storage }),
					col("DISK", func(b model.Backup) string { return strconv.FormatInt(b.DiskGiB, 10) + " GiB" }),
					col("CREATED", func(b model.Backup) string { return timestamp(b.Created) }))
			}),
		})
	var diskStorage string
	var diskTags []string
	diskAdd := vmTask("add VM GIB [--storage S | --storage-tag T]", "Add a data disk to a VM, stopped or running (at the next free vdX)", 2,
		func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
			gib, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || gib < 1 {
				return api.TaskView{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "GIB %q: want a whole number of GiB, at least 1", args[1])
			}
			return c.AttachVMDisk(ctx, id, api.DiskRequest{SizeGiB: gib, Storage: diskStorage, StorageTags: diskTags})
		})
	diskAdd.Flags().StringVar(&diskStorage, "storage", "", "the cluster storage of the disk")
	diskAdd.Flags().StringArrayVar(&diskTags, "storage-tag", nil, "the disk's storage carries this tag (repeatable)")
	disks := &cobra.Command{Use: "disk", Aliases: []string{"disks"}, Short: "A VM's data disks"}
	disks.AddCommand(diskAdd,
		vmTask("remove VM TARGET", "Remove a data disk (vdb, ...) from a VM and delete its volume", 2,
			func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
				return c.DetachVMDisk(ctx, id, args[1])
			}),
		vmTask("resize VM TARGET GIB", "Grow a data disk of a VM", 3,
			func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
				gib, err := strconv.ParseInt(args[2], 10, 64)
				if err != nil || gib < 1 {
					return api.TaskView{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "GIB %q: want a whole number of GiB, at least 1", args[2])
				}
				return c.ResizeVMDisk(ctx, id, args[1], gib)
			}),
		&cobra.Command{
			Use: "list VM", Short: "List a VM's disks, the root first", Args: exactArgs(1, "VM"), ValidArgsFunction: done,
			RunE: byVM(func(cmd *cobra.Command, c *client.Client, id string) error {
				vm, err := c.GetVM(cmd.Context(), id)
				if err != nil {
					return err
				}
				items := append([]model.Disk{{Target: model.RootTarget, SizeGiB: vm.DiskGiB, Storage: vm.Storage, Volume: vm.Volume}}, vm.Disks...)
				return printList(cmd.OutOrStdout(), a.output, items,
					col("TARGET", func(d model.Disk) string { return d.Target }),
					col("SIZE", func(d model.Disk) string { return strconv.FormatInt(d.SizeGiB, 10) + " GiB" }),
					col("STORAGE", func(d model.Disk) string { return d.Storage }),
					col("VOLUME", func(d model.Disk) string { return d.Volume }))
			}),
		})
	var grace time.Duration
	var force bool
	shutdown := vmTask("shutdown VM [--grace 60s] [--force=false]", "Shut a VM down gracefully (ACPI), powering it off when it does not stop in time", 1,
		func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
			return c.ShutdownVM(ctx, id, shutdownBody(grace, force))
		})
	shutdown.Flags().DurationVar(&grace, "grace", 0, "how long the guest may take to stop (whole seconds; 0: the daemon's 60 s)")
	shutdown.Flags().BoolVar(&force, "force", true, "power the VM off when it does not stop in time; --force=false fails the task instead")
	shutdown.PreRunE = func(cmd *cobra.Command, args []string) error {
		_, err := seconds("grace", grace)
		return err
	}
	suspend := vmTask("suspend VM", "Pause a running VM's CPUs (its memory stays)", 1, func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
		return c.SuspendVM(ctx, id)
	})
	resume := vmTask("resume VM", "Continue a suspended VM", 1, func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
		return c.ResumeVM(ctx, id)
	})
	reset := vmTask("reset VM", "Reset a running VM at once (the reset button)", 1, func(ctx context.Context, c *client.Client, id string, _ []string) (api.TaskView, error) {
		return c.ResetVM(ctx, id)
	})
	// clone shows the new VM once its task is done: start keeps it.
	var cloneKey string
	var cloned model.VM
	var cloneClient *client.Client
	clone := vmTaskThen("clone VM NAME [--idempotency-key KEY]", "Make a new VM with a full copy of a stopped VM's disk", 2,
		func(ctx context.Context, c *client.Client, id string, args []string) (api.TaskView, error) {
			vm, tv, err := c.CloneVM(ctx, id, args[1], cloneKey)
			cloned, cloneClient = vm, c
			return tv, err
		}, func(cmd *cobra.Command, args []string) func(context.Context) error {
			return show(cmd, cloneClient, cloned.ID)
		})
	clone.Flags().StringVar(&cloneKey, "idempotency-key", "", "a key of your choice: repeating the command with it returns the first clone")
	var noTags bool
	tags := &cobra.Command{
		Use: "tags VM TAG... | --none", Short: "Set a VM's tags (they replace the current ones; scripts select VMs by them)", Args: minArgs(1, "VM", "TAG..."), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			tags, err := tagArgs(cmd, args, noTags)
			if err != nil {
				return err
			}
			return byVM(func(cmd *cobra.Command, c *client.Client, id string) error {
				vm, err := c.SetVMTags(cmd.Context(), id, tags)
				if err != nil {
					return err
				}
				return printOne(cmd.OutOrStdout(), a.output, vm,
					col("ID", func(v model.VM) string { return v.ID }),
					col("NAME", func(v model.VM) string { return v.Name }),
					col("TAGS", func(v model.VM) string { return join(v.Tags) }))
			})(cmd, args)
		},
	}
	tags.Flags().BoolVar(&noTags, "none", false, "remove every tag")
	var ticket bool
	console := &cobra.Command{
		Use: "console VM [--ticket]", Short: "How to reach a VM's console; with --ticket a single-use URL of its web console", Args: exactArgs(1, "VM"), ValidArgsFunction: done,
		RunE: byVM(func(cmd *cobra.Command, c *client.Client, id string) error {
			if ticket {
				t, err := c.ConsoleTicket(cmd.Context(), id)
				if err != nil {
					return err
				}
				t.PageURL = c.BaseURL() + t.PageURL
				t.WebSocketURL = "ws" + strings.TrimPrefix(c.BaseURL(), "http") + t.WebSocketURL
				return printOne(cmd.OutOrStdout(), a.output, t,
					col("TYPE", func(t api.ConsoleTicketView) string { return t.Type }),
					col("EXPIRES", func(t api.ConsoleTicketView) string { return timestamp(t.Expires) }),
					col("URL", func(t api.ConsoleTicketView) string { return t.PageURL }))
			}
			ci, err := c.GetVMConsole(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, ci,
				col("TYPE", func(c model.ConsoleInfo) string { return c.Type }),
				col("OPEN", func(c model.ConsoleInfo) string { return strconv.FormatBool(c.Open) }))
		}),
	}
	console.Flags().BoolVar(&ticket, "ticket", false, "issue a ticket (it works once, for you, within its expiry) and print the console's URL")
	get := &cobra.Command{
		Use: "get VM", Short: "Show a VM", Args: exactArgs(1, "VM"), ValidArgsFunction: done,
		RunE: byVM(func(cmd *cobra.Command, c *client.Client, id string) error { return show(cmd, c, id)(cmd.Context()) }),
	}
	cmd.AddCommand(list, create, get, del, start, stop, reboot, shutdown, suspend, resume, reset, resize, limits, rescue, migrate, clone, tags, console,
		snap, moveDisk, toImage, backup, disks, a.guestCommand(done))
	return cmd
}

// shutdownBody is the body of a shutdown: nil for the defaults.
func shutdownBody(grace time.Duration, force bool) *api.ShutdownBody {
	if grace == 0 && force {
		return nil
	}
	b := &api.ShutdownBody{TimeoutSec: int(grace / time.Second)}
	if !force {
		b.Force = &force
	}
	return b
}

// guestCommand is vm guest: what a VM's guest agent does.
func (a *app) guestCommand(done cobra.CompletionFunc) *cobra.Command {
	cmd := &cobra.Command{Use: "guest", Short: "A VM's guest agent: its interfaces, commands, passwords"}
	byVM := func(f func(cmd *cobra.Command, args []string, c *client.Client, id string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := vmID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return f(cmd, args, c, id)
		}
	}
	var timeout time.Duration
	exec := &cobra.Command{
		Use:   "exec VM [--exec-timeout 30s] -- PROGRAM [ARG...]",
		Short: "Run a program in a VM through its guest agent (not a shell line); its output goes to stdout and stderr",
		Long: "Run a program in a VM through its guest agent. With -o table its stdout and stderr are written as they\n" +
			"came and a non-zero exit code fails vpt (exit 1); with -o json|yaml the result (exit_code, stdout, stderr) is printed.",
		Args: minArgs(2, "VM", "PROGRAM", "[ARG...]"), ValidArgsFunction: done,
		RunE: byVM(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			sec, err := seconds("exec-timeout", timeout)
			if err != nil {
				return err
			}
			r, err := c.GuestExec(cmd.Context(), id, api.GuestExecBody{Argv: args[1:], TimeoutSec: sec})
			if err != nil {
				return err
			}
			if a.output != "table" {
				return printOne(cmd.OutOrStdout(), a.output, r)
			}
			fmt.Fprint(cmd.OutOrStdout(), r.Stdout)
			fmt.Fprint(cmd.ErrOrStderr(), r.Stderr)
			if r.ExitCode != 0 {
				return fmt.Errorf("%s exited with %d", args[1], r.ExitCode)
			}
			return nil
		}),
	}
	exec.Flags().DurationVar(&timeout, "exec-timeout", 0, "how long to wait for the program (whole seconds; 0: the daemon's 30 s)")
	var password string
	var passwordStdin bool
	setPassword := &cobra.Command{
		Use: "set-password VM USER --password-stdin", Short: "Set a guest user's password through the guest agent", Args: exactArgs(2, "VM", "USER"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := excludes(cmd, "password", "password-stdin"); err != nil {
				return err
			}
			if passwordStdin {
				var err error
				if password, err = a.readSecret(); err != nil {
					return err
				}
			}
			if password == "" {
				return usageError{fmt.Errorf("%s: give --password-stdin (or --password)", cmd.CommandPath())}
			}
			return byVM(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
				if err := c.SetGuestPassword(cmd.Context(), id, args[1], password); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "password of %s on vm %s set\n", args[1], args[0])
				return nil
			})(cmd, args)
		},
	}
	setPassword.Flags().StringVar(&password, "password", "", "the password (visible to other users of this host: prefer --password-stdin)")
	setPassword.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	cmd.AddCommand(exec, setPassword, &cobra.Command{
		Use: "interfaces VM", Short: "A VM's network interfaces and addresses as its guest agent reports them", Args: exactArgs(1, "VM"), ValidArgsFunction: done,
		RunE: byVM(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			items, err := c.GuestInterfaces(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items,
				col("NAME", func(i api.GuestInterfaceView) string { return i.Name }),
				col("MAC", func(i api.GuestInterfaceView) string { return i.MAC }),
				col("ADDRESSES", func(i api.GuestInterfaceView) string { return join(i.Addresses) }))
		}),
	})
	return cmd
}

// parseDataDisk reads a --data-disk GIB[@STORAGE].
func parseDataDisk(v string) (api.DiskRequest, error) {
	size, storageName, _ := strings.Cut(v, "@")
	gib, err := strconv.ParseInt(size, 10, 64)
	if err != nil || gib < 1 {
		return api.DiskRequest{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "--data-disk %q: want GIB[@STORAGE], GIB a whole number, at least 1", v)
	}
	return api.DiskRequest{SizeGiB: gib, Storage: storageName}, nil
}

// limitFlags binds the flags of a VM's limits (model.Limits), the same for
// a create and a limits change; per-disk throttles are the API's
// (limits.disks) only.
func limitFlags(f *pflag.FlagSet, l *model.Limits) {
	f.IntVar(&l.CPUPercent, "cpu-limit", 0, "CPU cap in percent of the VM's vCPUs (0: none)")
	f.IntVar(&l.CPUWeight, "cpu-weight", 0, "CPU share against the node's other VMs, 1-10000 (0: default)")
	f.IntVar(&l.IOWeight, "io-weight", 0, "disk IO share, 1-10000 (0: default; needs a host with BFQ or CFQ)")
	f.IntVar(&l.NetMbit, "net-mbit", 0, "network limit in both directions, Mbit/s (0: none)")
	f.IntVar(&l.NetInMbit, "net-in-mbit", 0, "limit of what the VM receives, Mbit/s (instead of --net-mbit)")
	f.IntVar(&l.NetOutMbit, "net-out-mbit", 0, "limit of what the VM sends, Mbit/s (instead of --net-mbit)")
	f.IntVar(&l.DiskIOPS, "disk-iops", 0, "read and write IOPS limit of each disk (0: none)")
	f.StringArrayVar(&l.BlockInPorts, "block-in", nil, "drop TCP/UDP traffic to the VM on PORT[-LAST]/tcp|udp (repeatable)")
	f.StringArrayVar(&l.BlockOutPorts, "block-out", nil, "drop TCP/UDP traffic from the VM to PORT[-LAST]/tcp|udp, say 25/tcp (repeatable)")
	f.IntVar(&l.MaxConnections, "max-connections", 0, "cap of the VM's concurrent connections (routed clusters; 0: none)")
}

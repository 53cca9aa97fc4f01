package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/events"
)

func (a *app) taskCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "task", Aliases: []string{"tasks"}, Short: "Tasks: the changes the daemon carries out"}
	var o client.TaskListOptions
	list := &cobra.Command{
		Use: "list [--state S] [--target vm/ID]", Short: "List tasks, newest first", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.ListTasks(cmd.Context(), o)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, p.Items, taskCols()...)
		},
	}
	list.Flags().StringVar(&o.State, "state", "", "queued, running, undoing, succeeded, failed or canceled")
	list.Flags().StringVar(&o.Target, "target", "", "only the tasks on this object (vm/ID, image/ID)")
	list.Flags().IntVar(&o.Limit, "limit", 100, "tasks at most")
	one := func(use, short string, f func(cmd *cobra.Command, c *client.Client, id string) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: exactArgs(1, "TASK"),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := a.client()
				if err != nil {
					return err
				}
				return f(cmd, c, args[0])
			},
		}
	}
	cmd.AddCommand(list,
		one("get TASK", "Show a task", func(cmd *cobra.Command, c *client.Client, id string) error {
			t, err := c.GetTask(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, t, taskCols()...)
		}),
		one("log TASK", "Show a task's log", func(cmd *cobra.Command, c *client.Client, id string) error {
			lines, err := c.GetTaskLog(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, lines,
				col("SEQ", func(l api.LogLineView) string { return itoa(l.Seq) }),
				col("AT", func(l api.LogLineView) string { return timestamp(l.At) }),
				col("LINE", func(l api.LogLineView) string { return l.Line }))
		}),
		one("cancel TASK", "Cancel a task: a queued one ends, a running one rolls back", func(cmd *cobra.Command, c *client.Client, id string) error {
			t, err := c.CancelTask(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, t, taskCols()...)
		}),
		one("wait TASK", "Wait for a task to end, showing its progress; fails with the task's error", func(cmd *cobra.Command, c *client.Client, id string) error {
			t, err := c.GetTask(cmd.Context(), id)
			if err != nil {
				return err
			}
			return a.taskResult(cmd, c, t, true, nil)
		}),
	)
	return cmd
}

func (a *app) eventsCommand() *cobra.Command {
	var types []string
	var count int
	cmd := &cobra.Command{
		Use:   "events [--type vm,task] [--count N]",
		Short: "Follow the daemon's events (objects created, changed, deleted; task progress) until interrupted",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.waitCtx(cmd.Context())
			defer cancel()
			sub, err := c.Subscribe(ctx)
			if err != nil {
				return err
			}
			defer sub.Close()
			want := map[string]bool{}
			for _, t := range types {
				for _, x := range strings.Split(t, ",") {
					want[strings.TrimSpace(x)] = true
				}
			}
			out := cmd.OutOrStdout()
			if a.output == "table" {
				fmt.Fprintf(out, "%-20s  %-8s  %-8s  %-24s  %-10s  %s\n", "AT", "TYPE", "ACTION", "ID", "STATE", "PROGRESS")
			}
			seen := 0
			for count == 0 || seen < count {
				select {
				case <-ctx.Done():
					return nil // interrupted, or --timeout: following ends
				case e, ok := <-sub.C:
					if !ok {
						if err := sub.Err(); err != nil {
							return err
						}
						return virtplane.Errorf(virtplane.ErrUnavailable, "the event stream ended")
					}
					if len(want) > 0 && !want[e.Type] {
						continue
					}
					seen++
					if err := printEvent(out, a.output, e); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&types, "type", nil, "only events of these types: task, vm, node, cluster, pool, image, user")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many events (0: follow until interrupted or --timeout)")
	return cmd
}

func printEvent(w io.Writer, format string, e events.Event) error {
	switch format {
	case "json":
		// One event per line, as JSON Lines.
		return printJSONLine(w, e)
	case "yaml":
		fmt.Fprintln(w, "---")
		return printYAML(w, e)
	}
	progress := ""
	if e.Type == "task" {
		progress = itoa(e.Progress) + "%"
		if e.Message != "" {
			progress += " " + e.Message
		}
	}
	_, err := fmt.Fprintf(w, "%-20s  %-8s  %-8s  %-24s  %-10s  %s\n", timestamp(e.At), e.Type, e.Action, e.ID, e.State, progress)
	return err
}

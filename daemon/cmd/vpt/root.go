package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
)

// app is one run of the CLI: its environment and global flags.
type app struct {
	env
	configFlag string
	context    string
	url, token string
	output     string
	timeout    time.Duration
	poll       time.Duration
}

func rootCommand(e env) *cobra.Command {
	a := &app{env: e}
	root := &cobra.Command{
		Use:   "vpt",
		Short: "Operate virtplane daemons: clusters, nodes, IP pools, images, VMs, tasks, users",
		Long: "vpt drives one or several virtplane daemons through their REST API.\n" +
			"Log in once per daemon (vpt login URL); each login is a context, and --context picks one.\n" +
			"Objects are named by ID or by name. Changes are tasks: --wait follows them to their end.\n" +
			"Exit codes: 0 ok, 1 other error, 2 invalid argument, 3 not found, 4 already exists, 5 conflict,\n" +
			"6 permission denied, 7 unauthenticated, 8 unavailable, 9 resource exhausted, 10 timeout,\n" +
			"11 not implemented, 12 canceled.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringVar(&a.configFlag, "config", "", "config file of contexts (default $VPT_CONFIG or ~/.config/vpt/config.json)")
	f.StringVar(&a.context, "context", "", "context (daemon) to use; default the current one ($VPT_CONTEXT)")
	f.StringVar(&a.url, "url", "", "daemon URL, overriding the context ($VPT_URL)")
	f.StringVar(&a.token, "token", "", "API token, overriding the context ($VPT_TOKEN)")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	f.DurationVar(&a.timeout, "timeout", 30*time.Minute, "how long --wait and events wait at most")
	f.DurationVar(&a.poll, "poll", 200*time.Millisecond, "how often --wait reads a task")
	_ = root.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp
	})
	_ = root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		cfg, _, err := a.config()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return cfg.names(), cobra.ShellCompDirectiveNoFileComp
	})
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		switch a.output {
		case "table", "json", "yaml":
			return nil
		}
		return usageError{fmt.Errorf("--output %q: table, json or yaml", a.output)}
	}
	root.AddCommand(a.loginCommand(), a.contextCommand(), a.clusterCommand(), a.nodeCommand(), a.poolCommand(),
		a.imageCommand(), a.vmCommand(), a.templateCommand(), a.storageCommand(), a.scriptCommand(), a.notifyCommand(), a.taskCommand(), a.eventsCommand(), a.userCommand(),
		a.auditCommand(), a.tokenCommand(), a.whoamiCommand())
	return root
}

func (a *app) config() (Config, string, error) {
	path, err := configPath(a.configFlag, a.getenv)
	if err != nil {
		return Config{}, "", err
	}
	cfg, err := loadConfig(path)
	return cfg, path, err
}

// client returns the client of the context in use; flags and the
// environment override its URL and token.
func (a *app) client() (*client.Client, error) {
	url, token := a.url, a.token
	if url == "" {
		url = a.getenv("VPT_URL")
	}
	if token == "" {
		token = a.getenv("VPT_TOKEN")
	}
	if url == "" || token == "" {
		cfg, _, err := a.config()
		if err != nil {
			return nil, err
		}
		name := a.context
		if name == "" {
			name = a.getenv("VPT_CONTEXT")
		}
		if name == "" {
			name = cfg.Current
		}
		ci, ok := cfg.Contexts[name]
		switch {
		case ok:
		case name == "" && url == "":
			return nil, virtplane.Errorf(virtplane.ErrUnauthenticated, "no daemon: log in first (vpt login URL) or set --url and --token")
		case url == "":
			return nil, virtplane.Errorf(virtplane.ErrNotFound, "context %q (have: %s)", name, strings.Join(cfg.names(), ", "))
		}
		if url == "" {
			url = ci.URL
		}
		if token == "" && (ci.URL == url) {
			token = ci.Token
		}
	}
	c := client.New(url, token, client.WithUserAgent("vpt"), client.WithHTTPClient(&http.Client{Timeout: 2 * time.Minute}))
	c.Poll = a.poll
	return c, nil
}

// waitCtx bounds a wait by --timeout.
func (a *app) waitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.timeout)
}

// follow waits for a task, drawing its progress on stderr: a bar redrawn
// in place on a terminal, a line per change elsewhere.
func (a *app) follow(ctx context.Context, c *client.Client, tv api.TaskView) (api.TaskView, error) {
	ctx, cancel := a.waitCtx(ctx)
	defer cancel()
	t := c.Task(tv)
	tty := isTerminal(a.stderr)
	err := t.WaitProgress(ctx, func(v api.TaskView) {
		line := progressLine(v)
		if tty {
			fmt.Fprintf(a.stderr, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(a.stderr, line)
		}
	})
	if tty {
		fmt.Fprintln(a.stderr)
	}
	return t.View, err
}

// progressLine draws a task's state: [#######.............]  35% running: cloning the image
func progressLine(v api.TaskView) string {
	const width = 20
	p := min(max(v.Progress, 0), 100)
	if v.State == "succeeded" {
		p = 100
	}
	n := p * width / 100
	s := fmt.Sprintf("%s [%s%s] %3d%% %s", v.Kind, strings.Repeat("#", n), strings.Repeat(".", width-n), p, v.State)
	if v.Message != "" {
		s += ": " + v.Message
	}
	return s
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// taskCols are the columns of a task.
func taskCols() []column[api.TaskView] {
	return []column[api.TaskView]{
		col("ID", func(t api.TaskView) string { return t.ID }),
		col("KIND", func(t api.TaskView) string { return t.Kind }),
		col("TARGET", func(t api.TaskView) string { return t.Target }),
		col("STATE", func(t api.TaskView) string { return t.State }),
		col("PROGRESS", func(t api.TaskView) string { return itoa(t.Progress) + "%" }),
		col("ERROR", func(t api.TaskView) string { return t.Error }),
	}
}

// taskResult prints what a change answered: with --wait it follows the
// task and then prints what show returns (the object as it is now), else
// the task.
func (a *app) taskResult(cmd *cobra.Command, c *client.Client, tv api.TaskView, wait bool, show func(context.Context) error) error {
	if !wait {
		return printOne(cmd.OutOrStdout(), a.output, tv, taskCols()...)
	}
	final, err := a.follow(cmd.Context(), c, tv)
	if err != nil {
		return err
	}
	if show == nil {
		return printOne(cmd.OutOrStdout(), a.output, final, taskCols()...)
	}
	return show(cmd.Context())
}

func addWait(cmd *cobra.Command, wait *bool) {
	cmd.Flags().BoolVarP(wait, "wait", "w", false, "wait for the task to end, showing its progress on stderr")
}

// exactArgs is cobra.ExactArgs that reports a usage error.
func exactArgs(n int, names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %d argument(s): %s", cmd.CommandPath(), n, strings.Join(names, " "))}
		}
		return nil
	}
}

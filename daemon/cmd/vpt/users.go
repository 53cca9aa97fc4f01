package main

import (
	"bufio"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/model"
)

// readSecret reads a password from the first line of stdin.
func (a *app) readSecret() (string, error) {
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		if err == nil {
			err = fmt.Errorf("empty line")
		}
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "reading the password from stdin: %v", err)
	}
	return line, nil
}

func (a *app) loginCommand() *cobra.Command {
	var user, password, name, token, ttl string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login URL (--user NAME --password-stdin | --token TOKEN) [--name CONTEXT]",
		Short: "Sign in to a daemon and keep its token as a context (the current one from now on)",
		Args:  exactArgs(1, "URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			base := strings.TrimSuffix(args[0], "/")
			u, err := url.Parse(base)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageError{fmt.Errorf("URL %q: http(s)://HOST[:PORT]", args[0])}
			}
			if name == "" {
				name = u.Host
			}
			c := client.New(base, token, client.WithUserAgent("vpt"))
			switch {
			case token != "":
			case user != "":
				if passwordStdin {
					if password, err = a.readSecret(); err != nil {
						return err
					}
				}
				if password == "" {
					return usageError{fmt.Errorf("login: give --password-stdin (or --password)")}
				}
				t, err := c.LoginToken(cmd.Context(), client.LoginRequest{Name: user, Password: password, TokenName: "vpt", TTL: ttl})
				if err != nil {
					return err
				}
				token = t.Token
				c = c.WithToken(token)
			default:
				return usageError{fmt.Errorf("login: give --user (with --password-stdin) or --token")}
			}
			me, err := c.Me(cmd.Context())
			if err != nil {
				return err
			}
			cfg, path, err := a.config()
			if err != nil {
				return err
			}
			cfg.Contexts[name] = ContextInfo{URL: base, Token: token, User: me.Name}
			cfg.Current = name
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s as %s (%s); context %q is current\n", base, me.Name, me.Role, name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "user name")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	f.StringVar(&password, "password", "", "password (visible to other users of this host: prefer --password-stdin)")
	f.StringVar(&token, "token", "", "an API token to keep instead of signing in")
	f.StringVar(&name, "name", "", "context name (default: the URL's host:port)")
	f.StringVar(&ttl, "ttl", "", "lifetime of the token issued, as a Go duration (default: no expiry)")
	return cmd
}

func (a *app) contextCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "context", Aliases: []string{"contexts"}, Short: "The daemons vpt knows (one per login)"}
	names := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		cfg, _, err := a.config()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return cfg.names(), cobra.ShellCompDirectiveNoFileComp
	}
	type row struct {
		Name    string `json:"name"`
		URL     string `json:"url"`
		User    string `json:"user"`
		Current bool   `json:"current"`
	}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List the contexts", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := a.config()
			if err != nil {
				return err
			}
			var rows []row
			for _, n := range cfg.names() {
				ci := cfg.Contexts[n]
				rows = append(rows, row{n, ci.URL, ci.User, n == cfg.Current})
			}
			return printList(cmd.OutOrStdout(), a.output, rows,
				col("CURRENT", func(r row) string {
					if r.Current {
						return "*"
					}
					return " "
				}),
				col("NAME", func(r row) string { return r.Name }),
				col("URL", func(r row) string { return r.URL }),
				col("USER", func(r row) string { return r.User }))
		},
	}, &cobra.Command{
		Use: "use NAME", Short: "Make a context the current one", Args: exactArgs(1, "NAME"), ValidArgsFunction: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := a.config()
			if err != nil {
				return err
			}
			if _, ok := cfg.Contexts[args[0]]; !ok {
				return virtplane.Errorf(virtplane.ErrNotFound, "context %q (have: %s)", args[0], strings.Join(cfg.names(), ", "))
			}
			cfg.Current = args[0]
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q is current\n", args[0])
			return nil
		},
	}, &cobra.Command{
		Use: "delete NAME", Short: "Forget a context (its token stays valid: revoke it with vpt token delete)", Args: exactArgs(1, "NAME"), ValidArgsFunction: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := a.config()
			if err != nil {
				return err
			}
			if _, ok := cfg.Contexts[args[0]]; !ok {
				return virtplane.Errorf(virtplane.ErrNotFound, "context %q", args[0])
			}
			delete(cfg.Contexts, args[0])
			if cfg.Current == args[0] {
				cfg.Current = ""
			}
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q deleted\n", args[0])
			return nil
		},
	}, &cobra.Command{
		Use: "current", Short: "Print the current context", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := a.config()
			if err != nil {
				return err
			}
			if cfg.Current == "" {
				return virtplane.Errorf(virtplane.ErrNotFound, "no current context: log in first")
			}
			fmt.Fprintln(cmd.OutOrStdout(), cfg.Current)
			return nil
		},
	})
	return cmd
}

func userCols() []column[model.User] {
	return []column[model.User]{
		col("ID", func(u model.User) string { return u.ID }),
		col("NAME", func(u model.User) string { return u.Name }),
		col("ROLE", func(u model.User) string { return string(u.Role) }),
		col("SOURCE", func(u model.User) string { return u.Source }),
		col("DISABLED", func(u model.User) string { return fmt.Sprint(u.Disabled) }),
	}
}

func (a *app) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use: "whoami", Short: "Show the user of the current context", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			u, err := c.Me(cmd.Context())
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, u, userCols()...)
		},
	}
}

func (a *app) userCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Aliases: []string{"users"}, Short: "Users (admins), their email and quota"}
	byUser := func(f func(cmd *cobra.Command, args []string, c *client.Client, id string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := userID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return f(cmd, args, c, id)
		}
	}
	var name, password, role string
	var passwordStdin bool
	create := &cobra.Command{
		Use: "create --name NAME --password-stdin [--role user|admin]", Short: "Create a local user", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "name"); err != nil {
				return err
			}
			if passwordStdin {
				var err error
				if password, err = a.readSecret(); err != nil {
					return err
				}
			}
			if password == "" {
				return usageError{fmt.Errorf("user create: give --password-stdin (or --password)")}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			u, err := c.CreateUser(cmd.Context(), name, password, model.Role(role))
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, u, userCols()...)
		},
	}
	create.Flags().StringVar(&name, "name", "", "user name")
	create.Flags().StringVar(&password, "password", "", "password (prefer --password-stdin)")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	create.Flags().StringVar(&role, "role", "user", "user or admin")
	email := &cobra.Command{
		Use: "email USER ADDRESS", Short: "Set where a user's mails go (empty: none)", Args: exactArgs(2, "USER", "ADDRESS"),
		RunE: byUser(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			u, err := c.SetUserEmail(cmd.Context(), id, args[1])
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, u, append(userCols(), col("EMAIL", func(u model.User) string { return u.Email }))...)
		}),
	}
	cmd.AddCommand(create, email, a.quotaCommand(byUser), &cobra.Command{
		Use: "list", Short: "List users", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.ListUsers(cmd.Context(), client.ListOptions{Limit: 1000})
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, p.Items, userCols()...)
		},
	}, &cobra.Command{
		Use: "get USER", Short: "Show a user", Args: exactArgs(1, "USER"),
		RunE: byUser(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			u, err := c.GetUser(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, u, userCols()...)
		}),
	}, &cobra.Command{
		Use: "delete USER", Short: "Delete a user and their tokens (refused while they own VMs)", Args: exactArgs(1, "USER"),
		RunE: byUser(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			if err := c.DeleteUser(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted\n", args[0])
			return nil
		}),
	})
	return cmd
}

// quotaRow is one limit of a quota in a table.
type quotaRow struct {
	Resource    string
	Used, Limit int64
}

func (a *app) printQuota(cmd *cobra.Command, q model.Quota) error {
	if a.output != "table" {
		return printOne(cmd.OutOrStdout(), a.output, q)
	}
	rows := []quotaRow{
		{"vms", q.Usage.VMs, q.Limits.VMs},
		{"vcpus", q.Usage.VCPUs, q.Limits.VCPUs},
		{"memory_mib", q.Usage.MemoryMiB, q.Limits.MemoryMiB},
		{"disk_gib", q.Usage.DiskGiB, q.Limits.DiskGiB},
		{"addresses", q.Usage.Addresses, q.Limits.Addresses},
	}
	return printList(cmd.OutOrStdout(), a.output, rows,
		col("RESOURCE", func(r quotaRow) string { return r.Resource }),
		col("USED", func(r quotaRow) string { return itoa(r.Used) }),
		col("LIMIT", func(r quotaRow) string {
			if r.Limit == model.NoLimit {
				return "none"
			}
			return itoa(r.Limit)
		}))
}

// quotaFlags binds the limits of a quota to flags.
func quotaFlags(cmd *cobra.Command, l *model.QuotaAmounts) {
	f := cmd.Flags()
	f.Int64Var(&l.VMs, "vms", 0, "VMs at most (-1: no limit)")
	f.Int64Var(&l.VCPUs, "vcpus", 0, "vCPUs of all the user's VMs at most (-1: no limit)")
	f.Int64Var(&l.MemoryMiB, "memory-mib", 0, "memory of all the user's VMs at most, MiB (-1: no limit)")
	f.Int64Var(&l.DiskGiB, "disk-gib", 0, "disks of all the user's VMs at most, GiB (-1: no limit)")
	f.Int64Var(&l.Addresses, "addresses", 0, "IP addresses of all the user's VMs at most (-1: no limit)")
}

// quotaPatch is the patch of the limit flags given; with all, the limits
// not given are sent as none.
func quotaPatch(cmd *cobra.Command, l model.QuotaAmounts, all bool) api.QuotaPatch {
	var p api.QuotaPatch
	for _, x := range []struct {
		flag  string
		value int64
		dst   **int64
	}{
		{"vms", l.VMs, &p.VMs}, {"vcpus", l.VCPUs, &p.VCPUs}, {"memory-mib", l.MemoryMiB, &p.MemoryMiB},
		{"disk-gib", l.DiskGiB, &p.DiskGiB}, {"addresses", l.Addresses, &p.Addresses},
	} {
		switch {
		case cmd.Flags().Changed(x.flag):
			v := x.value
			*x.dst = &v
		case all:
			v := int64(model.NoLimit)
			*x.dst = &v
		}
	}
	return p
}

func (a *app) quotaCommand(byUser func(func(*cobra.Command, []string, *client.Client, string) error) func(*cobra.Command, []string) error) *cobra.Command {
	cmd := &cobra.Command{Use: "quota", Short: "A user's quota: the limits of their VMs and what they use"}
	var set, patch model.QuotaAmounts
	setCmd := &cobra.Command{
		Use: "set USER [--vms N] [--vcpus N] [--memory-mib N] [--disk-gib N] [--addresses N]", Args: exactArgs(1, "USER"),
		Short: "Set a user's quota: the limits given, the others none (PUT)",
		RunE: byUser(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			q, err := c.PutQuota(cmd.Context(), id, quotaPatch(cmd, set, true))
			if err != nil {
				return err
			}
			return a.printQuota(cmd, q)
		}),
	}
	quotaFlags(setCmd, &set)
	patchCmd := &cobra.Command{
		Use: "patch USER [--vms N] [--vcpus N] [--memory-mib N] [--disk-gib N] [--addresses N]", Args: exactArgs(1, "USER"),
		Short: "Change the limits given of a user's quota; the others stay (PATCH)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if p := quotaPatch(cmd, patch, false); p == (api.QuotaPatch{}) {
				return usageError{fmt.Errorf("%s: give a limit to change", cmd.CommandPath())}
			}
			return byUser(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
				q, err := c.SetQuota(cmd.Context(), id, quotaPatch(cmd, patch, false))
				if err != nil {
					return err
				}
				return a.printQuota(cmd, q)
			})(cmd, args)
		},
	}
	quotaFlags(patchCmd, &patch)
	cmd.AddCommand(setCmd, patchCmd, &cobra.Command{
		Use: "get USER", Short: "Show a user's quota and what their VMs use of it", Args: exactArgs(1, "USER"),
		RunE: byUser(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			q, err := c.Quota(cmd.Context(), id)
			if err != nil {
				return err
			}
			return a.printQuota(cmd, q)
		}),
	})
	return cmd
}

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The audit log: every mutating call (admins)"}
	var actor, target, after string
	var limit int
	list := &cobra.Command{
		Use: "list [--actor USER] [--target ID] [--limit N] [--after ID]", Short: "List audit entries, oldest first", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := atLeastOne(cmd, "limit", limit); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			actorID := ""
			if actor != "" {
				if actorID, err = userID(cmd.Context(), c, actor); err != nil {
					return err
				}
			}
			p, err := c.AuditLog(cmd.Context(), actorID, target, after, limit)
			if err != nil {
				return err
			}
			return printPage(cmd, a.output, "entries", p,
				col("AT", func(e api.AuditEntry) string { return timestamp(e.At) }),
				col("ACTOR", func(e api.AuditEntry) string { return e.Actor }),
				col("OPERATION", func(e api.AuditEntry) string { return e.Operation }),
				col("METHOD", func(e api.AuditEntry) string { return e.Method }),
				col("PATH", func(e api.AuditEntry) string { return e.Path }),
				col("STATUS", func(e api.AuditEntry) string { return itoa(e.Status) }))
		},
	}
	f := list.Flags()
	f.StringVar(&actor, "actor", "", "only the calls of this user")
	f.StringVar(&target, "target", "", "only the calls on the object of this ID")
	pageFlags(list, &after, &limit, "entries")
	cmd.AddCommand(list)
	return cmd
}

func tokenCols() []column[model.Token] {
	return []column[model.Token]{
		col("ID", func(t model.Token) string { return t.ID }),
		col("NAME", func(t model.Token) string { return t.Name }),
		col("CREATED", func(t model.Token) string { return timestamp(t.Created) }),
		col("EXPIRES", func(t model.Token) string { return timestamp(t.Expires) }),
	}
}

func (a *app) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Aliases: []string{"tokens"}, Short: "Your API tokens"}
	var name, ttl string
	create := &cobra.Command{
		Use: "create --name NAME [--ttl 24h]", Short: "Issue a token (its secret is shown only now)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "name"); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), name, ttl)
			if err != nil {
				return err
			}
			if a.output != "table" {
				return printOne(cmd.OutOrStdout(), a.output, t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s (%s): %s\n", t.Info.Name, t.Info.ID, t.Token)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "token name")
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime as a Go duration (default: no expiry)")
	cmd.AddCommand(create, &cobra.Command{
		Use: "list", Short: "List your tokens", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			toks, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			// Token IDs are hashes of their secrets: list them by age.
			sort.SliceStable(toks, func(i, j int) bool { return toks[i].Created.Before(toks[j].Created) })
			return printList(cmd.OutOrStdout(), a.output, toks, tokenCols()...)
		},
	}, &cobra.Command{
		Use: "delete TOKEN", Short: "Revoke one of your tokens (by ID or name)", Args: exactArgs(1, "TOKEN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id := args[0]
			toks, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			for _, t := range toks {
				if t.Name == args[0] {
					id = t.ID
				}
			}
			if err := c.DeleteToken(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		},
	})
	return cmd
}

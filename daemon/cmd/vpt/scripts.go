package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/scriptrun"
)

func scriptCols() []column[scriptrun.Script] {
	return []column[scriptrun.Script]{
		col("ID", func(s scriptrun.Script) string { return s.ID }),
		col("NAME", func(s scriptrun.Script) string { return s.Name }),
		col("KIND", func(s scriptrun.Script) string { return s.Kind }),
		col("VISIBILITY", func(s scriptrun.Script) string { return s.Visibility }),
		col("OWNER", func(s scriptrun.Script) string {
			if s.Builtin {
				return "(builtin)"
			}
			return s.Owner
		}),
		col("BODY", func(s scriptrun.Script) string {
			switch {
			case s.Redacted:
				return "hidden from you"
			case s.BodyHidden:
				return fmt.Sprintf("%d bytes, hidden", len(s.Body))
			}
			return fmt.Sprintf("%d bytes", len(s.Body))
		}),
		col("PARAMS", func(s scriptrun.Script) string {
			var n []string
			for _, p := range s.Params {
				n = append(n, p.Name)
			}
			return join(n)
		}),
	}
}

func listScripts(c *client.Client, ctx context.Context) ([]scriptrun.Script, error) {
	var all []scriptrun.Script
	after := ""
	for {
		p, err := c.ListScripts(ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			return all, nil
		}
		after = p.Next
	}
}

func scriptID(ctx context.Context, c *client.Client, ref string) (string, error) {
	list := func(ctx context.Context, o client.ListOptions) (client.Page[scriptrun.Script], error) {
		return c.ListScripts(ctx, o.After, o.Limit)
	}
	return resolve(ctx, "script", ref, c.GetScript, list, func(v scriptrun.Script) string { return v.ID }, func(v scriptrun.Script) string { return v.Name })
}

func listVariables(c *client.Client, ctx context.Context) ([]scriptrun.Variable, error) {
	return c.ListScriptVariables(ctx)
}

func variableID(ctx context.Context, c *client.Client, ref string) (string, error) {
	list := func(ctx context.Context, _ client.ListOptions) (client.Page[scriptrun.Variable], error) {
		items, err := c.ListScriptVariables(ctx)
		return client.Page[scriptrun.Variable]{Items: items}, err
	}
	return resolve(ctx, "variable", ref, c.GetScriptVariable, list, func(v scriptrun.Variable) string { return v.ID }, func(v scriptrun.Variable) string { return v.Name })
}

// parseParam reads a --param NAME[:TYPE][,KEY=VALUE...]: the keys are the
// fields of a parameter (description, required, default, pattern,
// choices a+b+c, min, max, max_length, hidden, generate).
func parseParam(spec string) (scriptrun.Param, error) {
	bad := func(why string) error {
		return usageError{fmt.Errorf("--param %q: %s (NAME[:TYPE][,KEY=VALUE...]; --params-file for values with commas)", spec, why)}
	}
	head, rest, _ := strings.Cut(spec, ",")
	name, typ, _ := strings.Cut(head, ":")
	if name == "" {
		return scriptrun.Param{}, bad("no name")
	}
	if typ == "" {
		typ = "string"
	}
	p := scriptrun.Param{Name: name, Type: typ}
	if rest == "" {
		return p, nil
	}
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, bad(fmt.Sprintf("%q is not KEY=VALUE", kv))
		}
		var err error
		switch k {
		case "description":
			p.Description = v
		case "default":
			p.Default = v
		case "pattern":
			p.Pattern = v
		case "choices":
			p.Choices = strings.Split(v, "+")
		case "required":
			p.Required, err = strconv.ParseBool(v)
		case "hidden":
			p.Hidden, err = strconv.ParseBool(v)
		case "min":
			p.Min, err = strconv.ParseInt(v, 10, 64)
		case "max":
			p.Max, err = strconv.ParseInt(v, 10, 64)
		case "max_length":
			p.MaxLength, err = strconv.Atoi(v)
		case "generate":
			p.Generate, err = strconv.Atoi(v)
		default:
			return p, bad(fmt.Sprintf("unknown key %q", k))
		}
		if err != nil {
			return p, bad(fmt.Sprintf("%s=%q: %v", k, v, err))
		}
	}
	return p, nil
}

// scriptFlags are the flags of a script's settings.
type scriptFlags struct {
	body                        scriptrun.ScriptBody
	file, noticeFile, paramFile string
	params                      []string
	noParams                    bool
}

func (sf *scriptFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&sf.body.Name, "name", "", "script name: lower-case letters, digits and inner dashes")
	f.StringVar(&sf.body.Kind, "kind", "shell", "shell, powershell or ansible")
	f.StringVarP(&sf.file, "file", "f", "", "the script's body from this file (- reads stdin)")
	f.StringVar(&sf.body.Description, "description", "", "what the script does")
	f.StringVar(&sf.body.Visibility, "visibility", "private", "private (you and admins) or everyone")
	f.BoolVar(&sf.body.BodyHidden, "hidden-body", false, "show the body only to you and admins, and mask its lines in run output")
	f.StringArrayVar(&sf.params, "param", nil, "a parameter NAME[:TYPE][,KEY=VALUE...] (TYPE string, int, bool, choice or password; keys description, required, default, pattern, choices=a+b, min, max, max_length, hidden, generate) (repeatable)")
	f.StringVar(&sf.paramFile, "params-file", "", "the parameters as a JSON or YAML list (the form of script get -o yaml's params)")
	f.StringArrayVar(&sf.body.Targets.AllOf, "target-all-of", nil, "a target must carry this tag (repeatable; with update \"\" clears)")
	f.StringArrayVar(&sf.body.Targets.AnyOf, "target-any-of", nil, "a target must carry one of these tags (repeatable; with update \"\" clears)")
	f.StringArrayVar(&sf.body.Targets.NoneOf, "target-none-of", nil, "a target must not carry this tag (repeatable; with update \"\" clears)")
	f.StringVar(&sf.noticeFile, "notice-file", "", "a text/template mailed after a successful run with --mail-result, from this file (- reads stdin)")
}

// params reads the parameters the flags give.
func (sf *scriptFlags) readParams(a *app, cmd *cobra.Command) ([]scriptrun.Param, error) {
	if err := excludes(cmd, "param", "params-file"); err != nil {
		return nil, err
	}
	var out []scriptrun.Param
	if sf.paramFile != "" {
		text, err := a.readInput("params-file", sf.paramFile)
		if err != nil {
			return nil, err
		}
		if err := decodeSettings("params-file", text, &out); err != nil {
			return nil, err
		}
	}
	for _, s := range sf.params {
		p, err := parseParam(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// nonEmpty drops the empty values of a repeated flag: --target-all-of ""
// clears the list.
func nonEmpty(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func runCols() []column[scriptrun.Run] {
	return []column[scriptrun.Run]{
		col("ID", func(r scriptrun.Run) string { return r.ID }),
		col("SCRIPT", func(r scriptrun.Run) string { return r.ScriptName }),
		col("STATE", func(r scriptrun.Run) string { return r.State }),
		col("TARGETS", func(r scriptrun.Run) string { return itoa(len(r.Targets)) }),
		col("CREATED", func(r scriptrun.Run) string { return timestamp(r.Created) }),
		col("ERROR", func(r scriptrun.Run) string { return r.Error }),
	}
}

// printRun writes a run: in a table its row, its targets and their output.
func (a *app) printRun(w io.Writer, r scriptrun.Run) error {
	if err := printOne(w, a.output, r, runCols()...); err != nil || a.output != "table" || len(r.Targets) == 0 {
		return err
	}
	fmt.Fprintln(w)
	if err := printList(w, a.output, r.Targets,
		col("TARGET", func(t scriptrun.TargetResult) string { return t.Target }),
		col("KIND", func(t scriptrun.TargetResult) string { return t.Kind }),
		col("ID", func(t scriptrun.TargetResult) string { return t.ID }),
		col("STATUS", func(t scriptrun.TargetResult) string { return t.Status }),
		col("EXIT", func(t scriptrun.TargetResult) string { return itoa(t.ExitCode) }),
		col("ERROR", func(t scriptrun.TargetResult) string { return t.Error })); err != nil {
		return err
	}
	for _, t := range r.Targets {
		for _, out := range []struct{ name, text string }{{"stdout", t.Stdout}, {"stderr", t.Stderr}} {
			if out.text == "" {
				continue
			}
			fmt.Fprintf(w, "\n--- %s %s ---\n%s", t.Target, out.name, out.text)
			if !strings.HasSuffix(out.text, "\n") {
				fmt.Fprintln(w)
			}
		}
	}
	return nil
}

func (a *app) scriptCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "script", Aliases: []string{"scripts"}, Short: "Scripts: shell, PowerShell and Ansible runs on VMs and nodes"}
	done := complete(a, listScripts, func(s scriptrun.Script) string { return s.Name })
	byScript := func(f func(cmd *cobra.Command, args []string, c *client.Client, id string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := scriptID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return f(cmd, args, c, id)
		}
	}
	var cf scriptFlags
	create := &cobra.Command{
		Use: "create --name NAME --file FILE|- [--kind shell] [flags]", Short: "Add a script (yours)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "name", "file"); err != nil {
				return err
			}
			b := cf.body
			var err error
			if b.Body, err = a.readInput("file", cf.file); err != nil {
				return err
			}
			if cf.noticeFile != "" {
				if b.Notice, err = a.readInput("notice-file", cf.noticeFile); err != nil {
					return err
				}
			}
			if b.Params, err = cf.readParams(a, cmd); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.CreateScript(cmd.Context(), b)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, s, scriptCols()...)
		},
	}
	cf.bind(create)
	var uf scriptFlags
	update := &cobra.Command{
		Use: "update SCRIPT [flags]", Short: "Change a script (the flags given; the rest stays)", Args: exactArgs(1, "SCRIPT"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if f.Changed("no-params") && (f.Changed("param") || f.Changed("params-file")) {
				return usageError{fmt.Errorf("%s: --no-params takes no --param or --params-file", cmd.CommandPath())}
			}
			return byScript(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
				cur, err := c.GetScript(cmd.Context(), id)
				if err != nil {
					return err
				}
				b := scriptrun.ScriptBody{Name: cur.Name, Description: cur.Description, Visibility: cur.Visibility, Kind: cur.Kind,
					Body: cur.Body, BodyHidden: cur.BodyHidden, Params: cur.Params, Targets: cur.Targets, Notice: cur.Notice}
				for name, apply := range map[string]func(){
					"name":           func() { b.Name = uf.body.Name },
					"kind":           func() { b.Kind = uf.body.Kind },
					"description":    func() { b.Description = uf.body.Description },
					"visibility":     func() { b.Visibility = uf.body.Visibility },
					"hidden-body":    func() { b.BodyHidden = uf.body.BodyHidden },
					"target-all-of":  func() { b.Targets.AllOf = nonEmpty(uf.body.Targets.AllOf) },
					"target-any-of":  func() { b.Targets.AnyOf = nonEmpty(uf.body.Targets.AnyOf) },
					"target-none-of": func() { b.Targets.NoneOf = nonEmpty(uf.body.Targets.NoneOf) },
					"no-params":      func() { b.Params = nil },
				} {
					if f.Changed(name) {
						apply()
					}
				}
				if f.Changed("file") {
					if b.Body, err = a.readInput("file", uf.file); err != nil {
						return err
					}
				}
				if f.Changed("notice-file") {
					b.Notice = ""
					if uf.noticeFile != "" {
						if b.Notice, err = a.readInput("notice-file", uf.noticeFile); err != nil {
							return err
						}
					}
				}
				if f.Changed("param") || f.Changed("params-file") {
					if b.Params, err = uf.readParams(a, cmd); err != nil {
						return err
					}
				}
				s, err := c.UpdateScript(cmd.Context(), id, b)
				if err != nil {
					return err
				}
				return printOne(cmd.OutOrStdout(), a.output, s, scriptCols()...)
			})(cmd, args)
		},
	}
	uf.bind(update)
	update.Flags().BoolVar(&uf.noParams, "no-params", false, "remove every parameter")
	cmd.AddCommand(create, update, a.runCommand(done, byScript), &cobra.Command{
		Use: "list", Short: "List the scripts you may run (the built-ins too)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, err := listScripts(c, cmd.Context())
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items, scriptCols()...)
		},
	}, &cobra.Command{
		Use: "get SCRIPT", Short: "Show a script (-o yaml shows its body and parameters)", Args: exactArgs(1, "SCRIPT"), ValidArgsFunction: done,
		RunE: byScript(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			s, err := c.GetScript(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, s, scriptCols()...)
		}),
	}, &cobra.Command{
		Use: "delete SCRIPT", Short: "Delete a script", Args: exactArgs(1, "SCRIPT"), ValidArgsFunction: done,
		RunE: byScript(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			if err := c.DeleteScript(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "script %s deleted\n", args[0])
			return nil
		}),
	}, a.runsCommand(), &cobra.Command{
		Use: "run-get RUN", Short: "Show a run: its state, and each target's exit code and (masked) output", Args: exactArgs(1, "RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.GetScriptRun(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printRun(cmd.OutOrStdout(), r)
		},
	}, a.variableCommand())
	return cmd
}

func (a *app) runCommand(done cobra.CompletionFunc, byScript func(func(*cobra.Command, []string, *client.Client, string) error) func(*cobra.Command, []string) error) *cobra.Command {
	var b scriptrun.RunBody
	var vms, nodes, kv []string
	var argStdin string
	var timeout time.Duration
	var wait bool
	cmd := &cobra.Command{
		Use:   "run SCRIPT (--vm VM | --node NODE | --tag TAG)... [--arg NAME=VALUE]... [--wait]",
		Short: "Run a script on VMs (over SSH) or nodes (admins); with --wait show the run once it ended",
		Args:  exactArgs(1, "SCRIPT"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			body := b
			body.Args = map[string]string{}
			for _, s := range kv {
				k, v, ok := strings.Cut(s, "=")
				if !ok || k == "" {
					return usageError{fmt.Errorf("--arg %q: NAME=VALUE", s)}
				}
				body.Args[k] = v
			}
			if argStdin != "" {
				v, err := a.readSecret()
				if err != nil {
					return err
				}
				body.Args[argStdin] = v
			}
			if len(body.Args) == 0 {
				body.Args = nil
			}
			var err error
			if body.TimeoutSeconds, err = seconds("run-timeout", timeout); err != nil {
				return err
			}
			return byScript(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
				ctx := cmd.Context()
				for _, v := range vms {
					vid, err := vmID(ctx, c, v)
					if err != nil {
						return err
					}
					body.VMIDs = append(body.VMIDs, vid)
				}
				for _, n := range nodes {
					nid, err := nodeID(ctx, c, n)
					if err != nil {
						return err
					}
					body.NodeIDs = append(body.NodeIDs, nid)
				}
				rt, err := c.RunScript(ctx, id, body)
				if err != nil {
					return err
				}
				if !wait {
					return a.printRun(cmd.OutOrStdout(), rt.Run)
				}
				// The run is shown even when it failed: its targets say why.
				_, ferr := a.follow(ctx, c, rt.Task)
				r, err := c.GetScriptRun(ctx, rt.Run.ID)
				if err != nil {
					return err
				}
				if err := a.printRun(cmd.OutOrStdout(), r); err != nil {
					return err
				}
				return ferr
			})(cmd, args)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&vms, "vm", nil, "a VM to run on (yours; admins: any) (repeatable)")
	f.StringArrayVar(&nodes, "node", nil, "a node to run on (admins) (repeatable)")
	f.StringArrayVar(&b.Tags, "tag", nil, "also every running VM (admins: and node) carrying all of these tags (repeatable)")
	f.StringArrayVar(&kv, "arg", nil, "a parameter's value NAME=VALUE (repeatable)")
	f.StringVar(&argStdin, "arg-stdin", "", "the value of this parameter from the first line of stdin (for secrets)")
	f.BoolVar(&b.MailResult, "mail-result", false, "mail the result (and the script's notice after a success) to the owner of the VMs")
	f.DurationVar(&timeout, "run-timeout", 0, "how long the script may take per target (whole seconds; 0: the daemon's)")
	addWait(cmd, &wait)
	_ = cmd.RegisterFlagCompletionFunc("vm", complete(a, listVMs, func(v model.VM) string { return v.Name }))
	_ = cmd.RegisterFlagCompletionFunc("node", complete(a, listNodes, func(n model.Node) string { return n.Name }))
	return cmd
}

func (a *app) runsCommand() *cobra.Command {
	var after string
	var limit int
	cmd := &cobra.Command{
		Use: "runs [--limit N] [--after RUN]", Short: "List your script runs", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := atLeastOne(cmd, "limit", limit); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.ListScriptRuns(cmd.Context(), after, limit)
			if err != nil {
				return err
			}
			return printPage(cmd, a.output, "runs", p, runCols()...)
		},
	}
	pageFlags(cmd, &after, &limit, "runs")
	return cmd
}

func variableCols() []column[scriptrun.Variable] {
	return []column[scriptrun.Variable]{
		col("ID", func(v scriptrun.Variable) string { return v.ID }),
		col("NAME", func(v scriptrun.Variable) string { return v.Name }),
		col("SCOPE", func(v scriptrun.Variable) string { return v.Scope }),
		col("HIDDEN", func(v scriptrun.Variable) string { return strconv.FormatBool(v.Hidden) }),
		// A hidden value never reaches a table, whatever the daemon answered.
		col("VALUE", func(v scriptrun.Variable) string {
			if v.Hidden {
				return "********"
			}
			return v.Value
		}),
		col("OWNER", func(v scriptrun.Variable) string { return v.Owner }),
	}
}

// variableValue reads a variable's value from --value or --value-file
// (one trailing newline dropped).
func (a *app) variableValue(cmd *cobra.Command, value, file string) (string, error) {
	if err := excludes(cmd, "value", "value-file"); err != nil {
		return "", err
	}
	if !cmd.Flags().Changed("value") && !cmd.Flags().Changed("value-file") {
		return "", usageError{fmt.Errorf("%s needs --value or --value-file", cmd.CommandPath())}
	}
	if file == "" {
		return value, nil
	}
	v, err := a.readInput("value-file", file)
	if err != nil {
		return "", err
	}
	v = strings.TrimSuffix(v, "\n")
	return strings.TrimSuffix(v, "\r"), nil
}

func (a *app) variableCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "var", Aliases: []string{"vars", "variable", "variables"}, Short: "Script variables: values every run of your scripts (global: every script) gets"}
	done := complete(a, listVariables, func(v scriptrun.Variable) string { return v.Name })
	byVar := func(f func(cmd *cobra.Command, args []string, c *client.Client, id string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := variableID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return f(cmd, args, c, id)
		}
	}
	var b scriptrun.VariableBody
	var file string
	create := &cobra.Command{
		Use: "create --name NAME (--value V | --value-file FILE|-) [--scope local|global] [--hidden]", Short: "Add a variable", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "name"); err != nil {
				return err
			}
			body := b
			var err error
			if body.Value, err = a.variableValue(cmd, b.Value, file); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			v, err := c.CreateScriptVariable(cmd.Context(), body)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, v, variableCols()...)
		},
	}
	f := create.Flags()
	f.StringVar(&b.Name, "name", "", "the variable's name: an identifier, it becomes an environment variable")
	f.StringVar(&b.Value, "value", "", "its value (visible to other users of this host: prefer --value-file for secrets)")
	f.StringVar(&file, "value-file", "", "its value from this file, one trailing newline dropped (- reads stdin)")
	f.StringVar(&b.Scope, "scope", "local", "local (your scripts) or global (every script; admins)")
	f.BoolVar(&b.Hidden, "hidden", false, "a secret: never shown again, masked in run output")
	var value, updFile string
	var hidden bool
	update := &cobra.Command{
		Use: "update VAR (--value V | --value-file FILE|-) [--hidden=true|false]", Short: "Set a variable's value", Args: exactArgs(1, "VAR"), ValidArgsFunction: done,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := a.variableValue(cmd, value, updFile)
			if err != nil {
				return err
			}
			return byVar(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
				h := hidden
				if !cmd.Flags().Changed("hidden") {
					cur, err := c.GetScriptVariable(cmd.Context(), id)
					if err != nil {
						return err
					}
					h = cur.Hidden
				}
				out, err := c.UpdateScriptVariable(cmd.Context(), id, v, h)
				if err != nil {
					return err
				}
				return printOne(cmd.OutOrStdout(), a.output, out, variableCols()...)
			})(cmd, args)
		},
	}
	update.Flags().StringVar(&value, "value", "", "the new value (prefer --value-file for secrets)")
	update.Flags().StringVar(&updFile, "value-file", "", "the new value from this file, one trailing newline dropped (- reads stdin)")
	update.Flags().BoolVar(&hidden, "hidden", false, "whether the value is a secret (default: as it was)")
	cmd.AddCommand(create, update, &cobra.Command{
		Use: "list", Short: "List the global variables and yours (hidden values are never shown)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, err := listVariables(c, cmd.Context())
			if err != nil {
				return err
			}
			sort.SliceStable(items, func(i, j int) bool { return items[i].Name < items[j].Name })
			return printList(cmd.OutOrStdout(), a.output, items, variableCols()...)
		},
	}, &cobra.Command{
		Use: "get VAR", Short: "Show a variable", Args: exactArgs(1, "VAR"), ValidArgsFunction: done,
		RunE: byVar(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			v, err := c.GetScriptVariable(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, v, variableCols()...)
		}),
	}, &cobra.Command{
		Use: "delete VAR", Short: "Delete a variable", Args: exactArgs(1, "VAR"), ValidArgsFunction: done,
		RunE: byVar(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			if err := c.DeleteScriptVariable(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "variable %s deleted\n", args[0])
			return nil
		}),
	})
	return cmd
}

package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/model"
)

func templateCols() []column[model.DomainTemplate] {
	return []column[model.DomainTemplate]{
		col("ID", func(t model.DomainTemplate) string { return t.ID }),
		col("NAME", func(t model.DomainTemplate) string { return t.Name }),
		col("VERSION", func(t model.DomainTemplate) string { return itoa(t.Version) }),
		col("MACHINE", func(t model.DomainTemplate) string { return t.Machine }),
		col("CPU", func(t model.DomainTemplate) string {
			if t.CPUModel != "" {
				return t.CPUMode + " " + t.CPUModel
			}
			return t.CPUMode
		}),
		col("DISK_BUS", func(t model.DomainTemplate) string { return t.DiskBus }),
		col("NIC", func(t model.DomainTemplate) string { return t.NICModel }),
		col("VIDEO", func(t model.DomainTemplate) string { return t.Video }),
		col("OVERRIDE", func(t model.DomainTemplate) string {
			if t.Override == "" {
				return ""
			}
			return fmt.Sprintf("%d bytes", len(t.Override))
		}),
	}
}

func listTemplates(c *client.Client, ctx context.Context) ([]model.DomainTemplate, error) {
	var all []model.DomainTemplate
	o := client.ListOptions{Limit: 1000}
	for {
		p, err := c.ListTemplates(ctx, o)
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

func templateID(ctx context.Context, c *client.Client, ref string) (string, error) {
	return resolve(ctx, "template", ref, c.GetTemplate, c.ListTemplates,
		func(v model.DomainTemplate) string { return v.ID }, func(v model.DomainTemplate) string { return v.Name })
}

// templateFlags binds the settings of a domain template to flags;
// override is the file of its XML override.
func templateFlags(cmd *cobra.Command, b *api.TemplateBody, override *string) {
	f := cmd.Flags()
	f.StringVar(&b.Name, "name", "", "template name")
	f.StringVar(&b.Machine, "machine", "", "machine type: pc, q35, pc-i440fx-7.2, ...")
	f.StringVar(&b.CPUMode, "cpu-mode", "", "host-passthrough, host-model or custom")
	f.StringVar(&b.CPUModel, "cpu-model", "", "with --cpu-mode custom: qemu64, Haswell, ...")
	f.StringVar(&b.DiskBus, "disk-bus", "", "virtio, sata, scsi or ide")
	f.StringVar(&b.NICModel, "nic-model", "", "virtio, e1000 or rtl8139")
	f.StringVar(&b.Video, "video", "", "vga, cirrus, virtio, qxl, bochs or none")
	f.StringVar(override, "override-file", "", "a partial libvirt <domain> document merged on top, from this file (- reads stdin)")
}

func (a *app) templateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "template", Aliases: []string{"templates"}, Short: "Domain templates: virtual hardware choices of new VMs (admins change them)"}
	done := complete(a, listTemplates, func(t model.DomainTemplate) string { return t.Name })
	byTemplate := func(f func(cmd *cobra.Command, args []string, c *client.Client, id string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := templateID(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return f(cmd, args, c, id)
		}
	}
	var b api.TemplateBody
	var override string
	create := &cobra.Command{
		Use: "create --name NAME [flags]", Short: "Create a domain template", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "name"); err != nil {
				return err
			}
			body := b
			if override != "" {
				var err error
				if body.Override, err = a.readInput("override-file", override); err != nil {
					return err
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.CreateTemplate(cmd.Context(), body)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, t, templateCols()...)
		},
	}
	templateFlags(create, &b, &override)
	var upd api.TemplateBody
	var updOverride string
	update := &cobra.Command{
		Use:   "update TEMPLATE [flags]",
		Short: "Change a domain template (the flags given, an empty value clears; the rest stays), making a new version",
		Args:  exactArgs(1, "TEMPLATE"), ValidArgsFunction: done,
		RunE: byTemplate(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			cur, err := c.GetTemplate(cmd.Context(), id)
			if err != nil {
				return err
			}
			body := api.TemplateBody{Name: cur.Name, Machine: cur.Machine, CPUMode: cur.CPUMode, CPUModel: cur.CPUModel,
				DiskBus: cur.DiskBus, NICModel: cur.NICModel, Video: cur.Video, Override: cur.Override}
			f := cmd.Flags()
			for name, apply := range map[string]func(){
				"name":      func() { body.Name = upd.Name },
				"machine":   func() { body.Machine = upd.Machine },
				"cpu-mode":  func() { body.CPUMode = upd.CPUMode },
				"cpu-model": func() { body.CPUModel = upd.CPUModel },
				"disk-bus":  func() { body.DiskBus = upd.DiskBus },
				"nic-model": func() { body.NICModel = upd.NICModel },
				"video":     func() { body.Video = upd.Video },
			} {
				if f.Changed(name) {
					apply()
				}
			}
			if f.Changed("override-file") {
				body.Override = ""
				if updOverride != "" {
					if body.Override, err = a.readInput("override-file", updOverride); err != nil {
						return err
					}
				}
			}
			t, err := c.UpdateTemplate(cmd.Context(), id, body)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, t, templateCols()...)
		}),
	}
	templateFlags(update, &upd, &updOverride)
	cmd.AddCommand(create, update, &cobra.Command{
		Use: "list", Short: "List domain templates", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, err := listTemplates(c, cmd.Context())
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items, templateCols()...)
		},
	}, &cobra.Command{
		Use: "get TEMPLATE", Short: "Show a domain template", Args: exactArgs(1, "TEMPLATE"), ValidArgsFunction: done,
		RunE: byTemplate(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			t, err := c.GetTemplate(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, t, templateCols()...)
		}),
	}, &cobra.Command{
		Use: "delete TEMPLATE", Short: "Delete a domain template no cluster uses", Args: exactArgs(1, "TEMPLATE"), ValidArgsFunction: done,
		RunE: byTemplate(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			if err := c.DeleteTemplate(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "template %s deleted\n", args[0])
			return nil
		}),
	})
	return cmd
}

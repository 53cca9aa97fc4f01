package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/notify"
)

func subscriptionCols() []column[notify.Subscription] {
	return []column[notify.Subscription]{
		col("ID", func(s notify.Subscription) string { return s.ID }),
		col("OWNER", func(s notify.Subscription) string { return s.Owner }),
		col("CHANNEL", func(s notify.Subscription) string { return s.Channel }),
		col("TO", func(s notify.Subscription) string { return subscriptionTo(s) }),
		col("EVENTS", func(s notify.Subscription) string { return join(s.Events) }),
		col("ALL", func(s notify.Subscription) string { return strconv.FormatBool(s.All) }),
		col("CREATED", func(s notify.Subscription) string { return timestamp(s.Created) }),
	}
}

// subscriptionTo is where a subscription's notifications go.
func subscriptionTo(s notify.Subscription) string {
	switch s.Channel {
	case notify.ChannelEmail:
		return s.Email
	case notify.ChannelTelegram:
		return s.TelegramChatID
	}
	return s.WebhookURL
}

func deliveryCols() []column[notify.Delivery] {
	return []column[notify.Delivery]{
		col("ID", func(d notify.Delivery) string { return d.ID }),
		col("SUBSCRIPTION", func(d notify.Delivery) string { return d.SubscriptionID }),
		col("CHANNEL", func(d notify.Delivery) string { return d.Channel }),
		col("TO", func(d notify.Delivery) string { return d.To }),
		col("EVENT", func(d notify.Delivery) string { return d.Event }),
		col("STATE", func(d notify.Delivery) string { return d.State }),
		col("ATTEMPTS", func(d notify.Delivery) string { return itoa(d.Attempts) }),
		col("LAST_ERROR", func(d notify.Delivery) string { return d.LastError }),
	}
}

func listSubscriptions(c *client.Client, ctx context.Context) ([]notify.Subscription, error) {
	return c.ListSubscriptions(ctx)
}

func (a *app) notifyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "notify", Aliases: []string{"notifications"}, Short: "Notifications: subscriptions to events, and their deliveries"}
	// byID runs f on the object named by the first argument (subscriptions
	// and deliveries have IDs only).
	byID := func(f func(cmd *cobra.Command, args []string, c *client.Client, id string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return f(cmd, args, c, args[0])
		}
	}
	channels := &cobra.Command{
		Use: "channels", Short: "The channels the daemon sends on, and the event types subscriptions may name", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			chs, evs, err := c.NotificationChannels(cmd.Context())
			if err != nil {
				return err
			}
			if a.output != "table" {
				return printOne(cmd.OutOrStdout(), a.output, struct {
					Channels []string `json:"channels"`
					Events   []string `json:"events"`
				}{chs, evs})
			}
			type row struct{ kind, name string }
			var rows []row
			for _, ch := range chs {
				rows = append(rows, row{"channel", ch})
			}
			for _, e := range evs {
				rows = append(rows, row{"event", e})
			}
			return printList(cmd.OutOrStdout(), a.output, rows,
				col("KIND", func(r row) string { return r.kind }),
				col("NAME", func(r row) string { return r.name }))
		},
	}
	deliveries := a.deliveriesCommand()
	delivery := &cobra.Command{
		Use: "delivery DELIVERY", Short: "Show a delivery and its attempts", Args: exactArgs(1, "DELIVERY"),
		RunE: byID(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			d, err := c.GetDelivery(cmd.Context(), id)
			if err != nil {
				return err
			}
			if err := printOne(cmd.OutOrStdout(), a.output, d, deliveryCols()...); err != nil || a.output != "table" || len(d.Log) == 0 {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return printList(cmd.OutOrStdout(), a.output, d.Log,
				col("ATTEMPT_AT", func(x notify.Attempt) string { return timestamp(x.At) }),
				col("ERROR", func(x notify.Attempt) string { return x.Error }))
		}),
	}
	cmd.AddCommand(channels, a.subscriptionCommand(byID), deliveries, delivery)
	return cmd
}

func (a *app) deliveriesCommand() *cobra.Command {
	var after string
	var limit int
	cmd := &cobra.Command{
		Use: "deliveries [--limit N] [--after DELIVERY]", Short: "List the delivery log (yours; admins: everyone's)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := atLeastOne(cmd, "limit", limit); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.ListDeliveries(cmd.Context(), after, limit)
			if err != nil {
				return err
			}
			return printPage(cmd, a.output, "deliveries", p, deliveryCols()...)
		},
	}
	pageFlags(cmd, &after, &limit, "deliveries")
	return cmd
}

func (a *app) subscriptionCommand(byID func(func(*cobra.Command, []string, *client.Client, string) error) func(*cobra.Command, []string) error) *cobra.Command {
	cmd := &cobra.Command{Use: "subscription", Aliases: []string{"subscriptions", "sub"}, Short: "Subscriptions: which events reach you, on which channel"}
	done := complete(a, listSubscriptions, func(s notify.Subscription) string { return s.ID })
	var b notify.SubscriptionBody
	var secretStdin bool
	create := &cobra.Command{
		Use:   "create --event EVENT... --channel email|telegram|webhook [--email ADDRESS | --telegram-chat ID | --webhook-url URL [--webhook-secret-stdin]] [--all]",
		Short: "Subscribe to events (a webhook's secret is shown only now)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(cmd, "event", "channel"); err != nil {
				return err
			}
			body := b
			if secretStdin {
				var err error
				if body.WebhookSecret, err = a.readSecret(); err != nil {
					return err
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.CreateSubscription(cmd.Context(), body)
			if err != nil {
				return err
			}
			if secretStdin {
				s.WebhookSecret = "" // the caller has it: no echo
			}
			if a.output != "table" {
				return printOne(cmd.OutOrStdout(), a.output, s)
			}
			if err := printOne(cmd.OutOrStdout(), a.output, s.Subscription, subscriptionCols()...); err != nil {
				return err
			}
			if s.WebhookSecret != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "webhook secret (shown only now): %s\n", s.WebhookSecret)
			}
			return nil
		},
	}
	f := create.Flags()
	f.StringSliceVar(&b.Events, "event", nil, "event types (repeatable or comma-separated; vpt notify channels lists them)")
	f.StringVar(&b.Channel, "channel", "", "email, telegram or webhook")
	f.BoolVar(&b.All, "all", false, "admins: the events of every user and of the infrastructure")
	f.StringVar(&b.Email, "email", "", "email channel: the address (default: your email)")
	f.StringVar(&b.TelegramChatID, "telegram-chat", "", "telegram channel: the chat ID (a number, or @channelname)")
	f.StringVar(&b.WebhookURL, "webhook-url", "", "webhook channel: where the signed POSTs go")
	f.BoolVar(&secretStdin, "webhook-secret-stdin", false, "webhook channel: read the HMAC key from the first line of stdin (default: the daemon makes one)")
	_ = create.RegisterFlagCompletionFunc("channel", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{notify.ChannelEmail, notify.ChannelTelegram, notify.ChannelWebhook}, cobra.ShellCompDirectiveNoFileComp
	})
	cmd.AddCommand(create, &cobra.Command{
		Use: "list", Short: "List your subscriptions (admins: everyone's)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, err := c.ListSubscriptions(cmd.Context())
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), a.output, items, subscriptionCols()...)
		},
	}, &cobra.Command{
		Use: "get SUBSCRIPTION", Short: "Show a subscription", Args: exactArgs(1, "SUBSCRIPTION"), ValidArgsFunction: done,
		RunE: byID(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			s, err := c.GetSubscription(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, s, subscriptionCols()...)
		}),
	}, &cobra.Command{
		Use: "delete SUBSCRIPTION", Short: "Delete a subscription", Args: exactArgs(1, "SUBSCRIPTION"), ValidArgsFunction: done,
		RunE: byID(func(cmd *cobra.Command, args []string, c *client.Client, id string) error {
			if err := c.DeleteSubscription(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "subscription %s deleted\n", args[0])
			return nil
		}),
	}, &cobra.Command{
		Use: "test SUBSCRIPTION", Short: "Send a test notification and show its delivery", Args: exactArgs(1, "SUBSCRIPTION"), ValidArgsFunction: done,
		RunE: byID(func(cmd *cobra.Command, _ []string, c *client.Client, id string) error {
			d, err := c.TestSubscription(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), a.output, d, deliveryCols()...)
		}),
	})
	return cmd
}

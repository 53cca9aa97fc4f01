package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/scripts/mail"
	"github.com/virtplane/virtplane/storage"
)

// ScriptsConfig configures script runs.
type ScriptsConfig struct {
	// VMUser logs in to VMs to run scripts (default root).
	VMUser string
	// DefaultTimeout bounds a run that names none (default 30 min).
	DefaultTimeout time.Duration
	// BootWait is how long a run after a VM's create waits for its SSH
	// server (default 10 min).
	BootWait time.Duration
	// Parallel bounds the targets one run works on at once (default 8).
	Parallel int
}

// NotifyConfig configures notifications and result mails.
type NotifyConfig struct {
	// SMTP is the relay mails go through; nil sends no mail.
	SMTP *mail.Config
	// TelegramToken is the bot's token; empty sends nothing to Telegram.
	// TelegramAPI is the Bot API endpoint (default https://api.telegram.org).
	TelegramToken, TelegramAPI string
	// WebhookAllow, when not empty, lists where webhooks may go: host
	// names, IP addresses or CIDR prefixes. Empty: anywhere.
	WebhookAllow []string
	// RetryMin, RetryMax, MaxAge and Poll tune the retries (see notify.Config).
	RetryMin, RetryMax, MaxAge, Poll time.Duration
}

// scriptServices makes the notification and script services and installs
// the script run handler on the engine.
func (s *Server) scriptServices() error {
	nc := s.cfg.Notify
	senders := map[string]notify.Sender{notify.ChannelWebhook: notify.NewWebhookSender(nil)}
	if nc.SMTP != nil {
		es, err := notify.NewEmailSender(*nc.SMTP)
		if err != nil {
			return err
		}
		senders[notify.ChannelEmail] = es
	}
	if nc.TelegramToken != "" {
		ts, err := notify.NewTelegramSender(nc.TelegramAPI, nc.TelegramToken, nil)
		if err != nil {
			return err
		}
		senders[notify.ChannelTelegram] = ts
	}
	allow, err := webhookAllow(nc.WebhookAllow)
	if err != nil {
		return err
	}
	if s.Notify, err = notify.New(notify.Config{Store: s.cfg.Store, Senders: senders, Logger: s.cfg.Logger, Instance: s.cfg.Instance,
		RetryMin: nc.RetryMin, RetryMax: nc.RetryMax, MaxAge: nc.MaxAge, Poll: nc.Poll, WebhookAllowed: allow}); err != nil {
		return err
	}
	sc := s.cfg.Scripts
	s.Scripts, err = scriptrun.New(scriptrun.Config{Store: s.cfg.Store, Tasks: s.Tasks, NodeExecutor: s.nodeExecutor, Notify: s.Notify,
		VMUser: sc.VMUser, NodeLogin: s.nodeLogin,
		DefaultTimeout: sc.DefaultTimeout, BootWait: sc.BootWait, Parallel: sc.Parallel, Logger: s.cfg.Logger})
	if err != nil {
		return err
	}
	s.Scripts.Register(s.Tasks)
	// Subscribed now, read by Run: nothing published in between is lost.
	s.watch = s.Events.Subscribe(notify.WatchFilter, notify.WatchBuffer)
	return nil
}

// webhookAllow turns the configured list into the check of a webhook's host.
func webhookAllow(list []string) (func(string) error, error) {
	if len(list) == 0 {
		return nil, nil
	}
	var prefixes []netip.Prefix
	var names []string
	for _, a := range list {
		if p, err := netip.ParsePrefix(a); err == nil {
			prefixes = append(prefixes, p)
		} else if ip, err := netip.ParseAddr(a); err == nil {
			prefixes = append(prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		} else if a != "" && !strings.ContainsAny(a, "/ ") {
			names = append(names, strings.ToLower(a))
		} else {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "daemon: webhook allow entry %q: a host name, an IP address or a CIDR prefix", a)
		}
	}
	return func(host string) error {
		if ip, err := netip.ParseAddr(host); err == nil {
			for _, p := range prefixes {
				if p.Contains(ip.Unmap()) {
					return nil
				}
			}
		} else if slices.Contains(names, strings.ToLower(host)) {
			return nil
		}
		return virtplane.Errorf(virtplane.ErrPermissionDenied, "webhook host %s is not among the hosts this daemon sends webhooks to", host)
	}, nil
}

// runAll runs the task engine, and beside it the notification dispatcher
// and the watch that turns events into notifications, until ctx ends.
func (s *Server) runAll(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, run := range []func(context.Context) error{s.Notify.Run, func(ctx context.Context) error { return s.Notify.Watch(ctx, s.watch) }} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(ctx) }()
	}
	return s.Tasks.Run(ctx)
}

// nodeExecutor is what runs a node's commands: the executor of the node's
// backend (the seam every node kind offers).
func (s *Server) nodeExecutor(ctx context.Context, n model.Node) (storage.Executor, error) {
	o, err := s.cfg.Store.GetObject(ctx, store.KindCluster, n.ClusterID)
	if err != nil {
		return nil, fmt.Errorf("node %s: cluster: %w", n.Name, err)
	}
	var c model.Cluster
	if err := json.Unmarshal(o.Data, &c); err != nil {
		return nil, err
	}
	b, err := s.Backend(ctx, n, c)
	if err != nil {
		return nil, err
	}
	if b.Exec == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s (%s): runs no commands", n.Name, b.Kind)
	}
	return b.Exec, nil
}

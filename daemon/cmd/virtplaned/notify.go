package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/scripts/mail"
)

// ScriptsFile configures script runs.
type ScriptsFile struct {
	// VMUser logs in to VMs (default root).
	VMUser string `json:"vm_user"`
	// Timeout bounds a run that names none; BootWait is how long a run
	// after a VM's create waits for its SSH server (Go durations).
	Timeout  string `json:"timeout"`
	BootWait string `json:"boot_wait"`
}

// NotifyFile configures notifications and result mails. Secrets (the relay
// password, the bot token) are set in the file only, never on the command
// line, where other users of the host read them.
type NotifyFile struct {
	SMTP struct {
		Host     string `json:"host"`
		Port     int    `json:"port"`
		From     string `json:"from"`
		Username string `json:"username"`
		Password string `json:"password"`
		// TLS is mandatory (default), opportunistic or none.
		TLS string `json:"tls"`
	} `json:"smtp"`
	TelegramBotToken string `json:"telegram_bot_token"`
	// TelegramAPI is the Bot API endpoint (default https://api.telegram.org).
	TelegramAPI string `json:"telegram_api"`
	// WebhookAllow lists where webhooks may go: host names, IPs, CIDRs
	// (empty: anywhere).
	WebhookAllow []string `json:"webhook_allow"`
	// RetryMax is the longest wait between two attempts of a delivery;
	// MaxAge how long a delivery is retried (Go durations).
	RetryMax string `json:"retry_max"`
	MaxAge   string `json:"max_age"`
}

func notifyFlags(f *pflag.FlagSet, flags *Config) {
	f.StringVar(&flags.Notify.SMTP.Host, "smtp-host", "", "SMTP relay for mails (script results, notifications); none: no mail")
	f.IntVar(&flags.Notify.SMTP.Port, "smtp-port", 587, "SMTP relay port")
	f.StringVar(&flags.Notify.SMTP.From, "smtp-from", "", "sender address of the daemon's mails")
	f.StringVar(&flags.Notify.SMTP.TLS, "smtp-tls", "mandatory", "mandatory, opportunistic or none (a relay on loopback)")
	f.StringVar(&flags.Notify.TelegramAPI, "telegram-api", "", "Telegram Bot API endpoint (default https://api.telegram.org); the token is set in the config file")
	f.StringVar(&flags.Scripts.VMUser, "script-vm-user", "", "user scripts log in to VMs as (default root)")
}

// notifyFlag copies a flag given on the command line over the file's value.
func notifyFlag(name string, cfg *Config, flags Config) {
	switch name {
	case "smtp-host":
		cfg.Notify.SMTP.Host = flags.Notify.SMTP.Host
	case "smtp-port":
		cfg.Notify.SMTP.Port = flags.Notify.SMTP.Port
	case "smtp-from":
		cfg.Notify.SMTP.From = flags.Notify.SMTP.From
	case "smtp-tls":
		cfg.Notify.SMTP.TLS = flags.Notify.SMTP.TLS
	case "telegram-api":
		cfg.Notify.TelegramAPI = flags.Notify.TelegramAPI
	case "script-vm-user":
		cfg.Scripts.VMUser = flags.Scripts.VMUser
	}
}

func duration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, virtplane.Errorf(virtplane.ErrInvalidArgument, "config %s %q: a Go duration (30m, 24h)", field, v)
	}
	return d, nil
}

// scriptsAndNotify turns the file's settings into the daemon's.
func (c Config) scriptsAndNotify() (daemon.ScriptsConfig, daemon.NotifyConfig, error) {
	var sc daemon.ScriptsConfig
	var nc daemon.NotifyConfig
	var err error
	sc.VMUser = c.Scripts.VMUser
	if sc.DefaultTimeout, err = duration("scripts.timeout", c.Scripts.Timeout); err != nil {
		return sc, nc, err
	}
	if sc.BootWait, err = duration("scripts.boot_wait", c.Scripts.BootWait); err != nil {
		return sc, nc, err
	}
	n := c.Notify
	if n.SMTP.Host != "" {
		nc.SMTP = &mail.Config{Host: n.SMTP.Host, Port: n.SMTP.Port, From: n.SMTP.From, Username: n.SMTP.Username,
			Password: n.SMTP.Password, TLS: mail.TLS(n.SMTP.TLS)}
	}
	nc.TelegramToken, nc.TelegramAPI, nc.WebhookAllow = n.TelegramBotToken, n.TelegramAPI, n.WebhookAllow
	if nc.RetryMax, err = duration("notify.retry_max", n.RetryMax); err != nil {
		return sc, nc, err
	}
	if nc.MaxAge, err = duration("notify.max_age", n.MaxAge); err != nil {
		return sc, nc, err
	}
	return sc, nc, nil
}

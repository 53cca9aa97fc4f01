package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts/mail"
)

func TestScriptsAndNotifySettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "virtplaned.json")
	require.NoError(t, os.WriteFile(file, []byte(`{
		"scripts": {"vm_user": "debian", "timeout": "45m", "boot_wait": "2m"},
		"notify": {"smtp": {"host": "relay.example.test", "port": 2525, "from": "panel@example.test", "username": "u", "password": "p", "tls": "opportunistic"},
			"telegram_bot_token": "1:abc", "telegram_api": "http://127.0.0.1:9", "webhook_allow": ["10.0.0.0/8", "hooks.example.test"],
			"retry_max": "5m", "max_age": "48h"}}`), 0o600))
	cfg := defaults()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, jsonUnmarshal(b, &cfg))
	// A flag given on the command line wins over the file.
	var flags Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	notifyFlags(fs, &flags)
	require.NoError(t, fs.Parse([]string{"--smtp-host", "127.0.0.1", "--smtp-tls", "none"}))
	fs.Visit(func(f *pflag.Flag) { notifyFlag(f.Name, &cfg, flags) })

	sc, nc, err := cfg.scriptsAndNotify()
	require.NoError(t, err)
	assert.Equal(t, "debian", sc.VMUser)
	assert.Equal(t, 45*time.Minute, sc.DefaultTimeout)
	assert.Equal(t, 2*time.Minute, sc.BootWait)
	require.NotNil(t, nc.SMTP)
	assert.Equal(t, mail.Config{Host: "127.0.0.1", Port: 2525, From: "panel@example.test", Username: "u", Password: "p", TLS: mail.NoTLS}, *nc.SMTP)
	assert.Equal(t, "1:abc", nc.TelegramToken)
	assert.Equal(t, "http://127.0.0.1:9", nc.TelegramAPI)
	assert.Equal(t, []string{"10.0.0.0/8", "hooks.example.test"}, nc.WebhookAllow)
	assert.Equal(t, 5*time.Minute, nc.RetryMax)
	assert.Equal(t, 48*time.Hour, nc.MaxAge)

	cfg.Scripts.Timeout = "soon"
	_, _, err = cfg.scriptsAndNotify()
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "scripts.timeout")
	none, _, err := defaults().scriptsAndNotify()
	require.NoError(t, err)
	assert.Empty(t, none.VMUser)
	_, n, err := defaults().scriptsAndNotify()
	require.NoError(t, err)
	assert.Nil(t, n.SMTP, "no relay: no mail")
}

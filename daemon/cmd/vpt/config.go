package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/virtplane/virtplane"
)

// Config is the CLI's file of contexts: one per daemon it knows, and the
// current one. It holds tokens, so it is written readable by its owner only.
type Config struct {
	Current  string                 `json:"current"`
	Contexts map[string]ContextInfo `json:"contexts"`
}

// ContextInfo is one daemon: its URL and the token to call it with.
type ContextInfo struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	User  string `json:"user,omitempty"`
}

// configPath is --config, else $VPT_CONFIG, else
// $XDG_CONFIG_HOME/vpt/config.json or ~/.config/vpt/config.json.
func configPath(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if p := getenv("VPT_CONFIG"); p != "" {
		return p, nil
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "vpt", "config.json"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "no config file: set --config, VPT_CONFIG or HOME")
	}
	return filepath.Join(home, ".config", "vpt", "config.json"), nil
}

func loadConfig(path string) (Config, error) {
	cfg := Config{Contexts: map[string]ContextInfo{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, virtplane.Errorf(virtplane.ErrUnavailable, "config %s: %v", path, err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, virtplane.Errorf(virtplane.ErrInvalidArgument, "config %s: %v", path, err)
	}
	if cfg.Contexts == nil {
		cfg.Contexts = map[string]ContextInfo{}
	}
	return cfg, nil
}

func saveConfig(path string, cfg Config) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "config: %v", err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "config: %v", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "config: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "config: %v", err)
	}
	return nil
}

func (c Config) names() []string {
	var n []string
	for k := range c.Contexts {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

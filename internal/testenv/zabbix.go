package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// Zabbix is Debian's Zabbix 6.0 frontend and server schema, unpacked by
// `make env-zabbix`, and the PHP that serves the frontend's API. A test
// loads the schema into a database of its own and starts `php -S`.
type Zabbix struct {
	PHP      string // php8.2 CLI with the frontend's extensions
	Frontend string // the frontend's document root (api_jsonrpc.php)
	Schema   string // schema.sql.gz, images.sql.gz, data.sql.gz (PostgreSQL)
}

// RequireZabbix returns what `make env-zabbix` prepared.
func RequireZabbix(t testing.TB) Zabbix {
	t.Helper()
	kv := component(t, "zabbix", "env-zabbix", func(kv map[string]string) error {
		if err := need(kv, "PHP", "FRONTEND", "SCHEMA"); err != nil {
			return err
		}
		for _, p := range []string{kv["PHP"], filepath.Join(kv["FRONTEND"], "api_jsonrpc.php"), filepath.Join(kv["SCHEMA"], "schema.sql.gz")} {
			if _, err := os.Stat(p); err != nil {
				return err
			}
		}
		return nil
	})
	return Zabbix{PHP: kv["PHP"], Frontend: kv["FRONTEND"], Schema: kv["SCHEMA"]}
}

package testenv

import (
	"os"
	"testing"
)

// Prometheus holds the paths of Debian's Prometheus 2.42 server and
// promtool, unpacked by `make env-prometheus`; tests start their own servers.
type Prometheus struct {
	Server, Promtool string
}

// RequirePrometheus returns the binaries `make env-prometheus` unpacked.
func RequirePrometheus(t testing.TB) Prometheus {
	t.Helper()
	kv := component(t, "prometheus", "env-prometheus", func(kv map[string]string) error {
		if err := need(kv, "PROMETHEUS", "PROMTOOL"); err != nil {
			return err
		}
		for _, k := range []string{"PROMETHEUS", "PROMTOOL"} {
			if _, err := os.Stat(kv[k]); err != nil {
				return err
			}
		}
		return nil
	})
	return Prometheus{Server: kv["PROMETHEUS"], Promtool: kv["PROMTOOL"]}
}

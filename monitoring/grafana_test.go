package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/monitoring"
)

type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// query is one PromQL query of the dashboard and where it comes from.
type query struct{ where, expr string }

// dashboardQueries returns every panel's queries, and the variables'
// label_values queries turned into PromQL, with the Grafana variables
// replaced by what a user who picked "All" gets.
func dashboardQueries(t *testing.T) []query {
	var d dashboard
	require.NoError(t, json.Unmarshal(monitoring.GrafanaDashboard(), &d))
	vars := strings.NewReplacer(`$cluster`, `.*`, `$node`, `.*`, `$__rate_interval`, `15s`, `$__interval`, `5s`, `$__range`, `1m`)
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type != "row" {
				require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, query{fmt.Sprintf("panel %d %q %s", p.ID, p.Title, tg.RefID), vars.Replace(tg.Expr)})
			}
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		require.NotNil(t, m, "variable %s: %s is not label_values(selector, label)", v.Name, v.Definition)
		out = append(out, query{"variable " + v.Name, vars.Replace(fmt.Sprintf("group by (%s) (%s)", m[2], m[1]))})
	}
	return out
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// prometheus starts a Prometheus of the test's own that scrapes target
// every second, and returns its URL once it has scraped it a few times.
func startPrometheus(t *testing.T, p testenv.Prometheus, target string) string {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: virtplane
    static_configs:
      - targets: [%q]
`, target)), 0o644))
	out, err := exec.Command(p.Promtool, "check", "config", cfg).CombinedOutput()
	require.NoError(t, err, "promtool check config: %s", out)

	listen := freePort(t)
	cmd := exec.Command(p.Server, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logf.Close() })
	base := "http://" + listen

	// Ready once it has scraped the daemon four times (rates need two
	// samples in their window).
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := instant(base, `count_over_time(up{job="virtplane"}[1m]) >= 4 and up{job="virtplane"} == 1`)
		if err == nil && len(res) > 0 {
			return base
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("prometheus did not scrape %s four times within 60s (last: %v, %v)\n%s", target, res, err, log)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// instant evaluates expr now; a query Prometheus refuses is an error.
func instant(base, expr string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status    string   `json:"status"`
		Error     string   `json:"error"`
		Warnings  []string `json:"warnings"`
		ErrorType string   `json:"errorType"`
		Data      struct {
			ResultType string   `json:"resultType"`
			Result     []sample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("%s: %s", out.ErrorType, out.Error)
	}
	if len(out.Warnings) > 0 {
		return nil, fmt.Errorf("warnings: %v", out.Warnings)
	}
	if out.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", out.Data.ResultType)
	}
	return out.Data.Result, nil
}

// TestDashboardQueriesAgainstPrometheus: a real Prometheus (Debian's 2.42)
// scrapes a daemon on simulated nodes, and every query of the Grafana
// dashboard is valid PromQL with a non-empty answer.
func TestDashboardQueriesAgainstPrometheus(t *testing.T) {
	p := testenv.RequirePrometheus(t)
	d := startLiveDaemon(t)
	qs := dashboardQueries(t)
	require.Greater(t, len(qs), 20)
	base := startPrometheus(t, p, strings.TrimPrefix(d.url, "http://"))
	for _, q := range qs {
		res, err := instant(base, q.expr)
		if !assert.NoError(t, err, "%s: %s", q.where, q.expr) {
			continue
		}
		assert.NotEmpty(t, res, "%s: %s answered nothing", q.where, q.expr)
		if len(res) > 0 {
			t.Logf("%s: %d series, first %v = %v", q.where, len(res), res[0].Metric, res[0].Value[1])
		}
	}
}

// TestDashboardCheckFails shows the check can fail: a query of a metric
// the daemon does not export answers nothing, and bad PromQL is refused.
func TestDashboardCheckFails(t *testing.T) {
	p := testenv.RequirePrometheus(t)
	d := startLiveDaemon(t)
	base := startPrometheus(t, p, strings.TrimPrefix(d.url, "http://"))
	res, err := instant(base, `virtplane_no_such_metric`)
	require.NoError(t, err)
	assert.Empty(t, res)
	_, err = instant(base, `sum by (node (virtplane_node_cores)`)
	assert.Error(t, err)
}

package monitoring_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/monitoring"
)

// zabbixAPI is a Zabbix frontend's JSON-RPC API served by `php -S`.
type zabbixAPI struct {
	url  string
	auth string
}

func (z *zabbixAPI) call(method string, params, out any) error {
	req := map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
	if z.auth != "" {
		req["auth"] = z.auth
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, z.url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json-rpc")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
			Data    string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %v: %.500s", method, err, body)
	}
	if r.Error != nil {
		return fmt.Errorf("%s: %s %s", method, r.Error.Message, r.Error.Data)
	}
	if out != nil {
		return json.Unmarshal(r.Result, out)
	}
	return nil
}

// startZabbix makes a database of the test's own in env-postgres's
// cluster, loads Debian's Zabbix 6.0 schema into it, serves the frontend's
// API with `php -S` on loopback and signs in as Admin.
func startZabbix(t *testing.T) *zabbixAPI {
	zb := testenv.RequireZabbix(t)
	pg := testenv.RequirePostgres(t)
	ctx := t.Context()
	began := time.Now()

	admin, err := pgx.Connect(ctx, pg.AdminDSN)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "vpt_zbx_" + hex.EncodeToString(b)
	dsn, err := url.Parse(pg.DSN)
	require.NoError(t, err)
	user := dsn.User.Username()
	pass, _ := dsn.User.Password()
	_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0`, name, pgx.Identifier{user}.Sanitize()))
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pg.AdminDSN)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(context.Background())
		}
	})
	dsn.Path = "/" + name
	db, err := pgx.Connect(ctx, dsn.String())
	require.NoError(t, err)
	defer db.Close(context.Background())
	for _, f := range []string{"schema.sql.gz", "images.sql.gz", "data.sql.gz"} {
		sql := gunzip(t, filepath.Join(zb.Schema, f))
		_, err := db.PgConn().Exec(ctx, sql).ReadAll()
		require.NoError(t, err, "loading %s", f)
	}
	schemaLoaded := time.Since(began)

	listen := freePort(t)
	host, port, _ := strings.Cut(dsn.Host, ":")
	cmd := exec.Command(zb.PHP, "-S", listen, "-t", zb.Frontend)
	cmd.Env = append(os.Environ(), "VPT_ZBX_DB_HOST="+host, "VPT_ZBX_DB_PORT="+port, "VPT_ZBX_DB_NAME="+name,
		"VPT_ZBX_DB_USER="+user, "VPT_ZBX_DB_PASSWORD="+pass)
	logf, err := os.Create(filepath.Join(t.TempDir(), "php.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logf.Close() })

	z := &zabbixAPI{url: "http://" + listen + "/api_jsonrpc.php"}
	deadline := time.Now().Add(30 * time.Second)
	var version string
	for {
		err := z.call("apiinfo.version", map[string]any{}, &version)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("the Zabbix frontend API did not answer within 30s: %v\n%s", err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.True(t, strings.HasPrefix(version, "6.0."), "Zabbix API version %s", version)
	require.NoError(t, z.call("user.login", map[string]any{"username": "Admin", "password": "zabbix"}, &z.auth))
	t.Logf("Zabbix %s API up in %v (schema loaded in %v)", version, time.Since(began).Round(10*time.Millisecond), schemaLoaded.Round(10*time.Millisecond))
	return z
}

func gunzip(t *testing.T, path string) string {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := gzip.NewReader(f)
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return string(b)
}

func importRules() map[string]any {
	both := map[string]any{"createMissing": true, "updateExisting": true}
	return map[string]any{
		"groups":          map[string]any{"createMissing": true},
		"templates":       both,
		"items":           both,
		"discoveryRules":  both,
		"triggers":        both,
		"valueMaps":       both,
		"templateLinkage": map[string]any{"createMissing": true},
	}
}

// templateShape counts what the template defines, read from its YAML.
type templateShape struct {
	name                                 string
	items, discoveries, triggers, macros int
	prototypes, triggerPrototypes        map[string]int // by discovery rule key
	patterns                             []string       // PROMETHEUS_PATTERN and PROMETHEUS_TO_JSON parameters
}

func readTemplate(t *testing.T, src []byte) templateShape {
	var doc struct {
		Export struct {
			Version   string `yaml:"version"`
			Templates []struct {
				Template string           `yaml:"template"`
				Items    []map[string]any `yaml:"items"`
				Macros   []map[string]any `yaml:"macros"`
				LLD      []struct {
					Key            string           `yaml:"key"`
					Prototypes     []map[string]any `yaml:"item_prototypes"`
					TrigPrototypes []map[string]any `yaml:"trigger_prototypes"`
					Preprocessing  []struct {
						Type       string   `yaml:"type"`
						Parameters []string `yaml:"parameters"`
					} `yaml:"preprocessing"`
				} `yaml:"discovery_rules"`
			} `yaml:"templates"`
			Triggers []map[string]any `yaml:"triggers"`
		} `yaml:"zabbix_export"`
	}
	require.NoError(t, yaml.Unmarshal(src, &doc))
	require.Equal(t, "6.0", doc.Export.Version)
	require.Len(t, doc.Export.Templates, 1)
	tp := doc.Export.Templates[0]
	s := templateShape{name: tp.Template, items: len(tp.Items), discoveries: len(tp.LLD), triggers: len(doc.Export.Triggers), macros: len(tp.Macros),
		prototypes: map[string]int{}, triggerPrototypes: map[string]int{}}
	collect := func(items []map[string]any) {
		for _, it := range items {
			pre, _ := it["preprocessing"].([]any)
			for _, p := range pre {
				pm := p.(map[string]any)
				if pm["type"] == "PROMETHEUS_PATTERN" {
					s.patterns = append(s.patterns, pm["parameters"].([]any)[0].(string))
				}
			}
		}
	}
	collect(tp.Items)
	for _, d := range tp.LLD {
		s.prototypes[d.Key] = len(d.Prototypes)
		s.triggerPrototypes[d.Key] = len(d.TrigPrototypes)
		collect(d.Prototypes)
		for _, p := range d.Preprocessing {
			if p.Type == "PROMETHEUS_TO_JSON" {
				s.patterns = append(s.patterns, p.Parameters[0])
			}
		}
	}
	return s
}

// TestZabbixTemplateImports imports the template into a real Zabbix 6.0
// (Debian's frontend API over its schema in PostgreSQL) and reads back what
// Zabbix made of it: every item, discovery rule, prototype, trigger and macro.
func TestZabbixTemplateImports(t *testing.T) {
	want := readTemplate(t, monitoring.ZabbixTemplate())
	z := startZabbix(t)
	var ok bool
	require.NoError(t, z.call("configuration.import", map[string]any{
		"format": "yaml", "source": string(monitoring.ZabbixTemplate()), "rules": importRules()}, &ok))
	require.True(t, ok)

	var got []struct {
		TemplateID  string `json:"templateid"`
		Items       string `json:"items"`
		Discoveries string `json:"discoveries"`
		Triggers    string `json:"triggers"`
		Macros      []struct {
			Macro string `json:"macro"`
		} `json:"macros"`
	}
	require.NoError(t, z.call("template.get", map[string]any{"filter": map[string]any{"host": want.name},
		"selectItems": "count", "selectDiscoveries": "count", "selectTriggers": "count", "selectMacros": "extend"}, &got))
	require.Len(t, got, 1, "template %q after import", want.name)
	assert.Equal(t, fmt.Sprint(want.items), got[0].Items, "items")
	assert.Equal(t, fmt.Sprint(want.discoveries), got[0].Discoveries, "discovery rules")
	assert.Equal(t, fmt.Sprint(want.triggers), got[0].Triggers, "triggers")
	assert.Len(t, got[0].Macros, want.macros, "macros")

	var rules []struct {
		Key      string `json:"key_"`
		Items    string `json:"items"`
		Triggers string `json:"triggers"`
	}
	require.NoError(t, z.call("discoveryrule.get", map[string]any{"templateids": got[0].TemplateID,
		"selectItems": "count", "selectTriggers": "count"}, &rules))
	require.Len(t, rules, want.discoveries)
	for _, r := range rules {
		assert.Equal(t, fmt.Sprint(want.prototypes[r.Key]), r.Items, "item prototypes of %s", r.Key)
		assert.Equal(t, fmt.Sprint(want.triggerPrototypes[r.Key]), r.Triggers, "trigger prototypes of %s", r.Key)
	}

	// The import is repeatable (updateExisting), as operators re-import new versions.
	require.NoError(t, z.call("configuration.import", map[string]any{
		"format": "yaml", "source": string(monitoring.ZabbixTemplate()), "rules": importRules()}, &ok))

	// The check can fail: Zabbix refuses a trigger on an item the template lacks.
	broken := strings.Replace(string(monitoring.ZabbixTemplate()), "nodata(/virtplane by HTTP/virtplane.get_metrics,5m)=1",
		"nodata(/virtplane by HTTP/virtplane.no_such_item,5m)=1", 1)
	require.NotEqual(t, string(monitoring.ZabbixTemplate()), broken)
	err := z.call("configuration.import", map[string]any{"format": "yaml", "source": broken, "rules": importRules()}, &ok)
	assert.Error(t, err, "a trigger on a missing item must not import")
	t.Logf("broken template refused: %v", err)
}

// TestZabbixPatternsMatchDaemon: the metrics and labels the template's
// Prometheus patterns name are what a live daemon exports (evaluated by a
// real Prometheus, with the discovery macros set to a real node and VM).
func TestZabbixPatternsMatchDaemon(t *testing.T) {
	p := testenv.RequirePrometheus(t)
	shape := readTemplate(t, monitoring.ZabbixTemplate())
	d := startLiveDaemon(t)
	base := startPrometheus(t, p, strings.TrimPrefix(d.url, "http://"))
	vms, err := d.c.ListVMs(t.Context(), clientVMList())
	require.NoError(t, err)
	var vmID string
	for _, vm := range vms.Items {
		if vm.NodeID != "" {
			vmID = vm.ID
		}
	}
	require.NotEmpty(t, vmID)
	macros := strings.NewReplacer(`{#NODE}`, `n1`, `{#VMID}`, vmID)
	require.Greater(t, len(shape.patterns), 20)
	for _, pat := range shape.patterns {
		expr := macros.Replace(pat)
		res, err := instant(base, expr)
		if assert.NoError(t, err, expr) {
			assert.NotEmpty(t, res, "pattern %s matches nothing the daemon exports", expr)
		}
	}
}

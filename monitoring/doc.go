// Package monitoring holds what watches a virtplane daemon from outside:
// the Grafana dashboard (grafana/virtplane.json) over the daemon's /metrics
// and the Zabbix 6.0 template (zabbix/virtplane.yaml). Its tests hold them
// to a live daemon: every dashboard query is evaluated by a real Prometheus
// scraping a daemon on simulated nodes, and the template is imported into
// a real Zabbix.
//
//	os.WriteFile("virtplane.json", monitoring.GrafanaDashboard(), 0o644)
package monitoring

import _ "embed"

//go:embed grafana/virtplane.json
var grafana []byte

//go:embed zabbix/virtplane.yaml
var zabbix []byte

// GrafanaDashboard returns the dashboard JSON (import it into Grafana and
// pick a Prometheus data source that scrapes the daemon).
func GrafanaDashboard() []byte { return append([]byte(nil), grafana...) }

// ZabbixTemplate returns the Zabbix 6.0 template (YAML export format).
func ZabbixTemplate() []byte { return append([]byte(nil), zabbix...) }

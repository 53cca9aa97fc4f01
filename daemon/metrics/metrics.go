// Package metrics exposes the daemon's Prometheus metrics on a registry of
// its own (never the global one), so several daemons in one process, as in
// tests, do not collide: nodes and VMs by state (read from the store at
// scrape time), tasks by kind and final state with their durations, and API
// request latency by operation; and, with AddUsage, per-node and per-VM
// usage from the drivers (vmm.UsageReporter) with capacity, allocation and
// overcommit limits (see usage.go for the series).
//
//	m := metrics.New(st)
//	mux.Handle("/metrics", m.Handler())
//	m.ObserveRequest("createVM", 202, 3*time.Millisecond)
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/virtplane/virtplane/daemon/store"
)

// Metrics holds the daemon's collectors.
type Metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.HistogramVec
	tasksDone    *prometheus.CounterVec
	taskDuration *prometheus.HistogramVec
}

// New returns the metrics of one daemon; st answers the object counts.
func New(st store.Reader) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "virtplane_api_request_duration_seconds",
		Help:    "API request latency by operation and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
	}, []string{"operation", "code"})
	m.tasksDone = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "virtplane_tasks_finished_total",
		Help: "Tasks that ended, by kind and final state.",
	}, []string{"kind", "state"})
	m.taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "virtplane_task_duration_seconds",
		Help:    "Time from a task's start to its end, by kind.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
	}, []string{"kind"})
	m.reg.MustRegister(m.requests, m.tasksDone, m.taskDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&objectCounts{st: st})
	return m
}

// Registry returns the registry, for callers that add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveRequest records one API request.
func (m *Metrics) ObserveRequest(operation string, code int, d time.Duration) {
	m.requests.WithLabelValues(operation, strconv.Itoa(code)).Observe(d.Seconds())
}

// ObserveTask records a task change; only terminal states count.
func (m *Metrics) ObserveTask(t store.Task) {
	if !t.State.Terminal() {
		return
	}
	m.tasksDone.WithLabelValues(t.Kind, string(t.State)).Inc()
	if !t.Started.IsZero() && !t.Finished.IsZero() {
		m.taskDuration.WithLabelValues(t.Kind).Observe(t.Finished.Sub(t.Started).Seconds())
	}
}

// objectCounts reads object and queue counts from the store at scrape time,
// so the numbers are right whichever daemon made the change.
type objectCounts struct{ st store.Reader }

var (
	objectsDesc = prometheus.NewDesc("virtplane_objects", "Stored objects by kind.", []string{"kind"}, nil)
	queuedDesc  = prometheus.NewDesc("virtplane_tasks_active", "Tasks not yet finished, by state.", []string{"state"}, nil)
)

func (c *objectCounts) Describe(ch chan<- *prometheus.Desc) {
	ch <- objectsDesc
	ch <- queuedDesc
}

func (c *objectCounts) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, k := range []store.Kind{store.KindCluster, store.KindNode, store.KindVM, store.KindPool, store.KindImage, store.KindUser} {
		n, err := c.st.CountObjects(ctx, k, store.ListOptions{})
		if err != nil {
			ch <- prometheus.NewInvalidMetric(objectsDesc, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(n), string(k))
	}
	for _, s := range []store.TaskState{store.TaskQueued, store.TaskRunning, store.TaskUndoing} {
		ts, err := c.st.ListTasks(ctx, store.TaskFilter{States: []store.TaskState{s}, Limit: 100000})
		if err != nil {
			ch <- prometheus.NewInvalidMetric(queuedDesc, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(len(ts)), string(s))
	}
}

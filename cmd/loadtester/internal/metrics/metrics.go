/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package metrics defines the load tester's Prometheus metrics. They live in a registry of
// their own, served on the load tester's /metrics, so they never mix with the manager's.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the load tester's series.
type Metrics struct {
	// HTTPRequests counts the calls the load tester answered, by path and status code.
	HTTPRequests *prometheus.CounterVec
	// LoadsStarted counts the loads started.
	LoadsStarted prometheus.Counter
	// LoadsDeduplicated counts the calls that asked for a load already running.
	LoadsDeduplicated prometheus.Counter
	// LoadsRunning is the number of loads running now.
	LoadsRunning prometheus.Gauge
	// LoadRequests counts the requests the generator sent, by status code ("error" when
	// no response came).
	LoadRequests *prometheus.CounterVec
	// Commands counts the command tasks by type and result (ok, failed, refused).
	Commands *prometheus.CounterVec
}

// New creates the metrics and registers them, with the Go runtime and process
// collectors, in reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_loadtester_http_requests_total",
			Help: "Calls answered by the load tester, by path and status code.",
		}, []string{"path", "code"}),
		LoadsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_loadtester_loads_started_total",
			Help: "Loads started by the built-in generator.",
		}),
		LoadsDeduplicated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_loadtester_loads_deduplicated_total",
			Help: "Calls that asked for a load that was already running, which was not started again.",
		}),
		LoadsRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_loadtester_loads_running",
			Help: "Loads running now.",
		}),
		LoadRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_loadtester_load_requests_total",
			Help: "Requests sent by the built-in generator, by status code (error: no response).",
		}, []string{"code"}),
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_loadtester_commands_total",
			Help: "Command tasks (cmd, bash, helm, kubectl), by type and result: ok, failed or refused.",
		}, []string{"type", "result"}),
	}
	reg.MustRegister(m.HTTPRequests, m.LoadsStarted, m.LoadsDeduplicated, m.LoadsRunning, m.LoadRequests, m.Commands,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveLoadRequest records one request of the generator; it is a load.Observer.
func (m *Metrics) ObserveLoadRequest(code int, err error) {
	label := "error"
	if err == nil {
		label = strconv.Itoa(code)
	}
	m.LoadRequests.WithLabelValues(label).Inc()
}

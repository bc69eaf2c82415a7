/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
)

// traffic exposes Istio's and an application's request metrics with known, steady rates:
// every scrape first adds one round of requests, so the rates seen by Prometheus are in
// fixed proportions whatever the timing.
type traffic struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	appDur    *prometheus.HistogramVec
}

func newTraffic() *traffic {
	t := &traffic{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total", Help: "Requests."},
			[]string{"reporter", "destination_workload", "destination_workload_namespace", "response_code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds", Help: "Durations.",
			Buckets: []float64{50, 100, 200, 500, 1000}},
			[]string{"reporter", "destination_workload", "destination_workload_namespace", "response_code"}),
		appDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "Durations.",
			Buckets: []float64{0.05, 0.1, 0.2, 0.5, 1}},
			[]string{"kubernetes_namespace", "kubernetes_pod_name", "status"}),
	}
	t.reg.MustRegister(t.requests, t.durations, t.appDur)
	// A workload whose series exist but never move: its success rate is 0/0.
	t.requests.WithLabelValues("destination", "idle", "test", "200")
	return t
}

func (t *traffic) round() {
	istio := func(reporter, workload, code string, n int, ms float64) {
		t.requests.WithLabelValues(reporter, workload, "test", code).Add(float64(n))
		for range n {
			t.durations.WithLabelValues(reporter, workload, "test", code).Observe(ms)
		}
	}
	// podinfo: 99 % success at 150 ms, as the destination reports it.
	istio("destination", "podinfo", "200", 99, 150)
	istio("destination", "podinfo", "500", 1, 150)
	// The source side disagrees wildly; the builtin queries must not read it.
	istio("source", "podinfo", "500", 100, 900)
	// Two workloads for a query that returns several series.
	istio("destination", "split-a", "200", 10, 20)
	istio("destination", "split-b", "200", 10, 20)

	app := func(pod, status string, n int, s float64) {
		for range n {
			t.appDur.WithLabelValues("test", pod, status).Observe(s)
		}
	}
	// The canary's pods: 98 % success at 150 ms. The primary's pods fail everything and
	// must not match the target's pod-name pattern.
	app("podinfo-5d8f9c7b6-x2x4z", "200", 98, 0.15)
	app("podinfo-5d8f9c7b6-x2x4z", "500", 2, 0.15)
	app("podinfo-primary-6c7d8e9f0-abcde", "500", 100, 0.9)
}

func (t *traffic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.round()
	promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startPrometheus runs a real Prometheus scraping a traffic exporter and waits until rates
// can be computed.
func startPrometheus(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("a real Prometheus: not in -short (make unit)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if _, err := cluster.Build(ctx, logWriter{t}, cluster.Prometheus); err != nil {
		t.Skipf("the prometheus binary cannot be built, skipping the test against a real Prometheus: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	exporter := &http.Server{Handler: newTraffic(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = exporter.Serve(l) }()
	t.Cleanup(func() { _ = exporter.Close() })

	prom, err := cluster.StartPrometheus(ctx, cluster.PrometheusOptions{
		Targets: []string{l.Addr().String()}, ScrapeInterval: time.Second, Out: logWriter{t},
	})
	if err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		if err := prom.Stop(); err != nil {
			t.Errorf("stopping prometheus: %v", err)
		}
	})

	// A rate needs two scrapes of a series.
	client, err := promapi.NewClient(promapi.Config{Address: prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(client)
	deadline := time.Now().Add(90 * time.Second)
	for {
		v, _, _, err := api.Query(ctx, `sum(rate(istio_requests_total{destination_workload="idle"}[1m])) + sum(rate(istio_requests_total{destination_workload="podinfo"}[1m]))`, time.Time{})
		if vec, ok := v.(model.Vector); err == nil && ok && len(vec) == 1 && vec[0].Value > 0 {
			return prom.URL
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape the exporter twice in 90s (last: %v, %v); log %s", v, err, prom.LogFile())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// authProxy forwards to Prometheus only requests that carry the given Authorization header.
func authProxy(t *testing.T, promURL, authorization string) string {
	t.Helper()
	u, err := url.Parse(promURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != authorization {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

func near(got, want float64) bool { return math.Abs(got-want) < 0.05 }

func TestAgainstPrometheus(t *testing.T) {
	promURL := startPrometheus(t)
	ctx := context.Background()
	min, max := func(v float64) *flaggerv1.CanaryThresholdRange {
		return &flaggerv1.CanaryThresholdRange{Min: ptr.To(v)}
	}, func(v float64) *flaggerv1.CanaryThresholdRange {
		return &flaggerv1.CanaryThresholdRange{Max: ptr.To(v)}
	}

	t.Run("istio builtins", func(t *testing.T) {
		k := &Checker{DefaultAddress: promURL, Provider: flaggerv1.ProviderIstio}
		res := k.Check(ctx, canary(
			// 99 % within float rounding (Prometheus's rates may give 98.999...): the
			// threshold sits below it, the value is checked with near.
			flaggerv1.CanaryMetric{Name: RequestSuccessRate, ThresholdRange: min(98.5)},
			flaggerv1.CanaryMetric{Name: RequestDuration, ThresholdRange: max(500)},
			flaggerv1.CanaryMetric{Name: RequestDuration, ThresholdRange: max(100)},
		))
		if res[0].Err != nil || !near(res[0].Value, 99) {
			t.Errorf("success rate = %v, %v; want 99", res[0].Value, res[0].Err)
		}
		// All requests took 150 ms, in the (100, 200] bucket: the p99 interpolates to 199.
		if res[1].Err != nil || !near(res[1].Value, 199) {
			t.Errorf("duration = %v ms, %v; want 199", res[1].Value, res[1].Err)
		}
		wantFailure(t, res[2], ErrOutOfRange, "Halt podinfo.test advancement request duration 199ms > 100ms")
	})

	t.Run("kubernetes builtins read the canary's pods only", func(t *testing.T) {
		k := &Checker{DefaultAddress: promURL, Provider: flaggerv1.ProviderKubernetes}
		res := k.Check(ctx, canary(
			flaggerv1.CanaryMetric{Name: RequestSuccessRate, Threshold: 97},
			flaggerv1.CanaryMetric{Name: RequestDuration, Threshold: 500},
		))
		if res[0].Err != nil || !near(res[0].Value, 98) {
			t.Errorf("success rate = %v, %v; want 98", res[0].Value, res[0].Err)
		}
		if res[1].Err != nil || !near(res[1].Value, 199) {
			t.Errorf("duration = %v ms, %v; want 199 (seconds converted)", res[1].Value, res[1].Err)
		}
	})

	t.Run("no values", func(t *testing.T) {
		c := canary(flaggerv1.CanaryMetric{Name: RequestSuccessRate, ThresholdRange: min(99)})
		c.Spec.TargetRef.Name = "absent"
		r := checkOneMetric(t, &Checker{DefaultAddress: promURL}, c)
		wantFailure(t, r, ErrNoValues)
		if want := "Halt advancement no values found for istio metric request-success-rate probably absent.test is not receiving traffic"; r.Err.Error() != want {
			t.Errorf("reason %q, want %q", r.Err, want)
		}
	})

	t.Run("NaN", func(t *testing.T) {
		c := canary(flaggerv1.CanaryMetric{Name: RequestSuccessRate, ThresholdRange: min(99)})
		c.Spec.TargetRef.Name = "idle"
		r := checkOneMetric(t, &Checker{DefaultAddress: promURL}, c)
		wantFailure(t, r, ErrNaN, "Halt advancement istio metric request-success-rate: the query returned NaN, probably idle.test is not receiving traffic")
	})

	t.Run("several series", func(t *testing.T) {
		r := checkOneMetric(t, &Checker{DefaultAddress: promURL}, canary(flaggerv1.CanaryMetric{
			Name: "per-workload", ThresholdRange: max(1000),
			Query: `sum by (destination_workload) (rate(istio_requests_total{destination_workload=~"split-.*"}[{{ interval }}]))`,
		}))
		wantFailure(t, r, ErrSeveralSeries, "custom metric per-workload: the query returned 2 series, expected exactly one",
			`{destination_workload="split-a"}`, `{destination_workload="split-b"}`)
	})

	const ratioOfCode = `
sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}",response_code="{{ variables.code }}"}[{{ interval }}]))
/
sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}"}[{{ interval }}]))
* 100`

	t.Run("MetricTemplate with variables", func(t *testing.T) {
		reader := newReader(t, metricTemplate("istio-system", "code-percentage", ratioOfCode,
			flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: promURL}))
		k := &Checker{Reader: reader, DefaultAddress: "http://127.0.0.1:1"}
		ref := &flaggerv1.CrossNamespaceObjectReference{Name: "code-percentage", Namespace: "istio-system"}
		res := k.Check(ctx, canary(
			flaggerv1.CanaryMetric{Name: "5xx", TemplateRef: ref, TemplateVariables: map[string]string{"code": "500"}, ThresholdRange: max(5)},
			flaggerv1.CanaryMetric{Name: "2xx", TemplateRef: ref, TemplateVariables: map[string]string{"code": "200"}, ThresholdRange: max(5)},
		))
		if res[0].Err != nil || !near(res[0].Value, 1) {
			t.Errorf("5xx percentage = %v, %v; want 1", res[0].Value, res[0].Err)
		}
		if !strings.Contains(res[0].Query, "[1m]") {
			t.Errorf("the template's interval did not default to 1m: %s", res[0].Query)
		}
		wantFailure(t, res[1], ErrOutOfRange, "Halt podinfo.test advancement 2xx 99.00 > 5")
	})

	t.Run("credentials from the template's Secret", func(t *testing.T) {
		basic := authProxy(t, promURL, "Basic aGVyYWxkOnMzY3JldA==") // herald:s3cret
		bearer := authProxy(t, promURL, "Bearer tok-123")
		provider := func(secretName string) flaggerv1.MetricTemplateProvider {
			// The template's own address is unreachable: the Secret's address must win.
			return flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: "http://127.0.0.1:1",
				SecretRef: &corev1.LocalObjectReference{Name: secretName}}
		}
		reader := newReader(t,
			metricTemplate("test", "basic", ratioOfCode, provider("basic")),
			metricTemplate("test", "wrong", ratioOfCode, provider("wrong")),
			metricTemplate("test", "bearer", ratioOfCode, provider("bearer")),
			secret("test", "basic", map[string]string{"username": "herald", "password": "s3cret", "address": basic}),
			secret("test", "wrong", map[string]string{"username": "herald", "password": "guess", "address": basic}),
			secret("test", "bearer", map[string]string{"token": "tok-123", "address": bearer}),
		)
		metric := func(name string) flaggerv1.CanaryMetric {
			return flaggerv1.CanaryMetric{Name: name, TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: name},
				TemplateVariables: map[string]string{"code": "500"}, ThresholdRange: max(5)}
		}
		res := (&Checker{Reader: reader}).Check(ctx, canary(metric("basic"), metric("wrong"), metric("bearer")))
		if res[0].Err != nil || !near(res[0].Value, 1) {
			t.Errorf("basic auth: %v, %v; want 1", res[0].Value, res[0].Err)
		}
		wantFailure(t, res[1], ErrQueryFailed, "Metric query failed for wrong:", "401", "unauthorized")
		if strings.Contains(res[1].Err.Error(), "guess") {
			t.Errorf("the failure shows the password: %q", res[1].Err)
		}
		if res[2].Err != nil || !near(res[2].Value, 1) {
			t.Errorf("bearer token: %v, %v; want 1", res[2].Value, res[2].Err)
		}
	})
}

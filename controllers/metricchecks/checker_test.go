/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// canary returns podinfo in namespace test, with the given metrics.
func canary(metrics ...flaggerv1.CanaryMetric) *flaggerv1.Canary {
	return &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: flaggerv1.CanarySpec{
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Analysis:  &flaggerv1.CanaryAnalysis{Metrics: metrics},
		},
	}
}

// anyValue accepts every value, so that a test looks at the query result alone.
var anyValue = &flaggerv1.CanaryThresholdRange{}

// promRequest is what the fake Prometheus saw of one query.
type promRequest struct {
	query  string
	header http.Header
}

// fakeProm answers /api/v1/query with respond(query) and records every request.
type fakeProm struct {
	*httptest.Server
	mu       sync.Mutex
	requests []promRequest
}

func newFakeProm(t *testing.T, respond func(query string) (int, string)) *fakeProm {
	t.Helper()
	f := &fakeProm{}
	f.Server = httptest.NewServer(f.handler(respond))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProm) handler(respond func(query string) (int, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q := r.Form.Get("query")
		f.mu.Lock()
		f.requests = append(f.requests, promRequest{query: q, header: r.Header.Clone()})
		f.mu.Unlock()
		code, body := respond(q)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	})
}

func (f *fakeProm) seen() []promRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]promRequest(nil), f.requests...)
}

func constant(body string) func(string) (int, string) {
	return func(string) (int, string) { return http.StatusOK, body }
}

type sample struct {
	labels map[string]string
	value  string
}

func success(resultType string, result any) string {
	b, _ := json.Marshal(map[string]any{
		"status": "success",
		"data":   map[string]any{"resultType": resultType, "result": result},
	})
	return string(b)
}

func vector(samples ...sample) string {
	res := []map[string]any{}
	for _, s := range samples {
		res = append(res, map[string]any{"metric": s.labels, "value": []any{1700000000.0, s.value}})
	}
	return success("vector", res)
}

func one(value string) string { return vector(sample{labels: map[string]string{}, value: value}) }

func newReader(t *testing.T, objs ...client.Object) client.Reader {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := flaggerv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

// checkOneMetric runs a single-metric Canary and returns its only result.
func checkOneMetric(t *testing.T, k *Checker, c *flaggerv1.Canary) Result {
	t.Helper()
	res := k.Check(context.Background(), c)
	if len(res) != 1 {
		t.Fatalf("got %d results, want 1", len(res))
	}
	return res[0]
}

func wantFailure(t *testing.T, r Result, kind error, parts ...string) {
	t.Helper()
	if r.Err == nil {
		t.Fatalf("metric %s passed with %v, want a failure", r.Name, r.Value)
	}
	if !errors.Is(r.Err, kind) {
		t.Fatalf("failure %q is not %v", r.Err, kind)
	}
	for _, p := range parts {
		if !strings.Contains(r.Err.Error(), p) {
			t.Fatalf("failure %q does not contain %q", r.Err, p)
		}
	}
}

func TestResultCases(t *testing.T) {
	series := func(n int) string {
		var ss []sample
		for i := range n {
			ss = append(ss, sample{labels: map[string]string{"destination_workload": fmt.Sprintf("w%d", i)}, value: "1"})
		}
		return vector(ss...)
	}
	for _, tc := range []struct {
		name  string
		code  int
		body  string
		value float64
		kind  error // nil = passes
		parts []string
	}{
		{name: "one sample", code: 200, body: one("99.5"), value: 99.5},
		{name: "scalar", code: 200, body: success("scalar", []any{1700000000.0, "3.25"}), value: 3.25},
		{name: "no samples", code: 200, body: vector(), kind: ErrNoValues,
			parts: []string{"Halt advancement no values found for custom metric m probably podinfo.test is not receiving traffic"}},
		{name: "NaN", code: 200, body: one("NaN"), kind: ErrNaN,
			parts: []string{"Halt advancement custom metric m: the query returned NaN, probably podinfo.test is not receiving traffic"}},
		{name: "+Inf", code: 200, body: one("+Inf"), kind: ErrNaN, parts: []string{"returned +Inf"}},
		{name: "-Inf", code: 200, body: one("-Inf"), kind: ErrNaN, parts: []string{"returned -Inf"}},
		{name: "two series", code: 200, body: series(2), kind: ErrSeveralSeries,
			parts: []string{"returned 2 series, expected exactly one", `{destination_workload="w0"}`, `{destination_workload="w1"}`}},
		{name: "seven series", code: 200, body: series(7), kind: ErrSeveralSeries,
			parts: []string{"returned 7 series", `{destination_workload="w4"}`, "and 2 more"}},
		{name: "matrix", code: 200, kind: ErrUnexpectedType,
			body:  success("matrix", []any{map[string]any{"metric": map[string]string{}, "values": []any{[]any{1700000000.0, "1"}}}}),
			parts: []string{"returned a matrix, expected an instant vector with one sample"}},
		// Prometheus's client refuses string results itself.
		{name: "string", code: 200, body: success("string", []any{1700000000.0, "hello"}), kind: ErrQueryFailed,
			parts: []string{"Metric query failed for m:", `"string"`}},
		{name: "bad query", code: 400, body: `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}`,
			kind: ErrQueryFailed, parts: []string{"Metric query failed for m: bad_data: 1:5: parse error: unexpected end of input"}},
		{name: "execution error", code: 422, body: `{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}`,
			kind: ErrQueryFailed, parts: []string{"Metric query failed for m: execution: many-to-many matching not allowed"}},
		{name: "unavailable", code: 503, body: `{"status":"error","errorType":"timeout","error":"query timed out"}`,
			kind: ErrQueryFailed, parts: []string{"Metric query failed for m: server_error: server error: 503:", "query timed out"}},
		{name: "proxy page", code: 401, body: "<html>Unauthorized: sign in first</html>",
			kind: ErrQueryFailed, parts: []string{"Metric query failed for m: client_error: client error: 401: <html>Unauthorized: sign in first</html>"}},
		{name: "garbage", code: 200, body: "not json", kind: ErrQueryFailed, parts: []string{"Metric query failed for m:"}},
		{name: "success without data", code: 200, body: `{"status":"success"}`, kind: ErrNoValues},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeProm(t, func(string) (int, string) { return tc.code, tc.body })
			k := &Checker{DefaultAddress: p.URL}
			r := checkOneMetric(t, k, canary(flaggerv1.CanaryMetric{Name: "m", Query: "up", ThresholdRange: anyValue}))
			if r.Query != "up" {
				t.Errorf("Query = %q, want up", r.Query)
			}
			if tc.kind == nil {
				if r.Err != nil || r.Value != tc.value {
					t.Fatalf("got %v, %v; want %v, nil", r.Value, r.Err, tc.value)
				}
				return
			}
			wantFailure(t, r, tc.kind, tc.parts...)
		})
	}
}

func TestQueryUnreachable(t *testing.T) {
	p := newFakeProm(t, constant(one("1")))
	addr := p.URL
	p.Close()
	r := checkOneMetric(t, &Checker{DefaultAddress: addr}, canary(flaggerv1.CanaryMetric{Name: "m", Query: "up", ThresholdRange: anyValue}))
	wantFailure(t, r, ErrQueryFailed, "Metric query failed for m:", "connection refused")
}

func TestQueryTimeout(t *testing.T) {
	old := queryTimeout
	queryTimeout = 100 * time.Millisecond
	t.Cleanup(func() { queryTimeout = old })
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	r := checkOneMetric(t, &Checker{DefaultAddress: hang.URL}, canary(flaggerv1.CanaryMetric{Name: "m", Query: "up", ThresholdRange: anyValue}))
	wantFailure(t, r, ErrQueryFailed, "Metric query failed for m:", "context deadline exceeded")
}

func TestBuiltinIstio(t *testing.T) {
	p := newFakeProm(t, func(q string) (int, string) {
		if strings.Contains(q, "histogram_quantile") {
			return 200, one("612.5")
		}
		return 200, one("42")
	})
	c := canary(
		flaggerv1.CanaryMetric{Name: RequestSuccessRate, ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}},
		flaggerv1.CanaryMetric{Name: RequestDuration, Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(500.0)}},
	)
	res := (&Checker{DefaultAddress: p.URL, Provider: flaggerv1.ProviderIstio}).Check(context.Background(), c)
	if len(res) != 2 || res[0].Name != RequestSuccessRate || res[1].Name != RequestDuration {
		t.Fatalf("results %+v are not in spec order", res)
	}
	wantFailure(t, res[0], ErrOutOfRange)
	if got, want := res[0].Err.Error(), "Halt podinfo.test advancement success rate 42.00% < 99%"; got != want {
		t.Fatalf("reason %q, want %q", got, want)
	}
	if res[0].Value != 42 {
		t.Fatalf("Value = %v, want 42 (the value stays readable when out of range)", res[0].Value)
	}
	wantFailure(t, res[1], ErrOutOfRange)
	if got, want := res[1].Err.Error(), "Halt podinfo.test advancement request duration 612.5ms > 500ms"; got != want {
		t.Fatalf("reason %q, want %q", got, want)
	}
	for _, part := range []string{`istio_requests_total{`, `reporter="destination"`, `destination_workload_namespace="test"`,
		`destination_workload=~"podinfo"`, `response_code!~"5.*"`, `[1m]`, `* 100`} {
		if !strings.Contains(res[0].Query, part) {
			t.Errorf("success-rate query lacks %q:\n%s", part, res[0].Query)
		}
	}
	for _, part := range []string{`histogram_quantile(0.99`, `istio_request_duration_milliseconds_bucket{`, `[30s]`, `by (le)`} {
		if !strings.Contains(res[1].Query, part) {
			t.Errorf("duration query lacks %q:\n%s", part, res[1].Query)
		}
	}
	// What was sent is what the Result shows.
	sent := map[string]bool{}
	for _, r := range p.seen() {
		sent[r.query] = true
	}
	if !sent[res[0].Query] || !sent[res[1].Query] {
		t.Fatalf("Prometheus saw %v, not the rendered queries", p.seen())
	}
}

func TestBuiltinKubernetes(t *testing.T) {
	p := newFakeProm(t, func(q string) (int, string) {
		if strings.Contains(q, "histogram_quantile") {
			return 200, one("0.25") // seconds
		}
		return 200, one("99.5")
	})
	c := canary(
		flaggerv1.CanaryMetric{Name: RequestSuccessRate, Threshold: 99},
		flaggerv1.CanaryMetric{Name: RequestDuration, Threshold: 500},
	)
	res := (&Checker{DefaultAddress: p.URL, Provider: flaggerv1.ProviderKubernetes}).Check(context.Background(), c)
	if res[0].Err != nil || res[0].Value != 99.5 {
		t.Fatalf("success rate = %v, %v", res[0].Value, res[0].Err)
	}
	if res[1].Err != nil || res[1].Value != 250 {
		t.Fatalf("duration = %v ms, %v; want 250 ms", res[1].Value, res[1].Err)
	}
	for _, part := range []string{`http_request_duration_seconds_count{`, `kubernetes_namespace="test"`,
		`kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"`, `status!~"5.*"`} {
		if !strings.Contains(res[0].Query, part) {
			t.Errorf("success-rate query lacks %q:\n%s", part, res[0].Query)
		}
	}
	if !strings.Contains(res[1].Query, `http_request_duration_seconds_bucket{`) {
		t.Errorf("duration query: %s", res[1].Query)
	}
}

// TestBuiltinGatewayAPI: every spelling of the Gateway API provider reads the application's
// histogram, as Flagger's does, in seconds turned to milliseconds.
func TestBuiltinGatewayAPI(t *testing.T) {
	p := newFakeProm(t, func(q string) (int, string) {
		if strings.Contains(q, "histogram_quantile") {
			return 200, one("0.125")
		}
		return 200, one("98")
	})
	for _, provider := range []string{flaggerv1.ProviderGatewayAPI, flaggerv1.ProviderGatewayAPIV1, flaggerv1.ProviderGatewayAPIV1Beta1} {
		c := canary(
			flaggerv1.CanaryMetric{Name: RequestSuccessRate, ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}},
			flaggerv1.CanaryMetric{Name: RequestDuration, ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(500.0)}},
		)
		c.Spec.Provider = provider
		res := (&Checker{DefaultAddress: p.URL}).Check(context.Background(), c)
		if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "98") || !strings.Contains(res[0].Query, `http_request_duration_seconds_count{`) {
			t.Errorf("%s: success rate %v (%v), query %s", provider, res[0].Value, res[0].Err, res[0].Query)
		}
		if res[1].Err != nil || res[1].Value != 125 || !strings.Contains(res[1].Query, `http_request_duration_seconds_bucket{`) {
			t.Errorf("%s: duration %v ms (%v), query %s", provider, res[1].Value, res[1].Err, res[1].Query)
		}
	}
}

func TestBuiltinProviderFromSpec(t *testing.T) {
	p := newFakeProm(t, constant(one("100")))
	c := canary(flaggerv1.CanaryMetric{Name: RequestSuccessRate, Threshold: 99})
	c.Spec.Provider = flaggerv1.ProviderIstio
	r := checkOneMetric(t, &Checker{DefaultAddress: p.URL, Provider: flaggerv1.ProviderKubernetes}, c)
	if r.Err != nil || !strings.Contains(r.Query, "istio_requests_total") {
		t.Fatalf("spec.provider istio did not win over the default: %q, %v", r.Query, r.Err)
	}
	// Empty everywhere: istio.
	c.Spec.Provider = ""
	r = checkOneMetric(t, &Checker{DefaultAddress: p.URL}, c)
	if !strings.Contains(r.Query, "istio_requests_total") {
		t.Fatalf("no provider anywhere did not default to istio: %q", r.Query)
	}
}

func TestBuiltinNoValues(t *testing.T) {
	p := newFakeProm(t, constant(vector()))
	r := checkOneMetric(t, &Checker{DefaultAddress: p.URL, Provider: flaggerv1.ProviderIstio},
		canary(flaggerv1.CanaryMetric{Name: RequestSuccessRate, Threshold: 99}))
	wantFailure(t, r, ErrNoValues)
	if got, want := r.Err.Error(), "Halt advancement no values found for istio metric request-success-rate probably podinfo.test is not receiving traffic"; got != want {
		t.Fatalf("reason %q, want %q", got, want)
	}
}

func TestBuiltinUnsupportedProvider(t *testing.T) {
	p := newFakeProm(t, constant(one("100")))
	c := canary(flaggerv1.CanaryMetric{Name: RequestDuration, Threshold: 500})
	c.Spec.Provider = "linkerd"
	r := checkOneMetric(t, &Checker{DefaultAddress: p.URL}, c)
	wantFailure(t, r, ErrInvalidMetric, "spec.analysis.metrics[0]", `provider "linkerd"`, "MetricTemplate")
	if len(p.seen()) != 0 {
		t.Fatal("a query was sent for a provider without builtin queries")
	}
}

func TestUnknownMetric(t *testing.T) {
	p := newFakeProm(t, constant(one("100")))
	res := (&Checker{DefaultAddress: p.URL}).Check(context.Background(), canary(
		flaggerv1.CanaryMetric{Name: RequestSuccessRate, Threshold: 99},
		flaggerv1.CanaryMetric{Name: "error-rate", Threshold: 1},
	))
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	wantFailure(t, res[1], ErrInvalidMetric, `spec.analysis.metrics[1]: metric "error-rate" has neither templateRef nor query`)
}

func TestNoAnalysis(t *testing.T) {
	k := &Checker{DefaultAddress: "http://127.0.0.1:1"}
	c := canary()
	c.Spec.Analysis = nil
	if res := k.Check(context.Background(), c); res != nil {
		t.Fatalf("no analysis gave %v", res)
	}
	if res := k.Check(context.Background(), nil); res != nil {
		t.Fatalf("nil canary gave %v", res)
	}
	// The deprecated canaryAnalysis is read too.
	p := newFakeProm(t, constant(one("5")))
	c.Spec.CanaryAnalysis = &flaggerv1.CanaryAnalysis{Metrics: []flaggerv1.CanaryMetric{{Name: "m", Query: "up", Threshold: 10}}}
	r := checkOneMetric(t, &Checker{DefaultAddress: p.URL}, c)
	if r.Err != nil || r.Value != 5 {
		t.Fatalf("canaryAnalysis metric: %v, %v", r.Value, r.Err)
	}
}

func TestNoAddress(t *testing.T) {
	r := checkOneMetric(t, &Checker{}, canary(flaggerv1.CanaryMetric{Name: "m", Query: "up", ThresholdRange: anyValue}))
	wantFailure(t, r, ErrInvalidMetric, "no metrics server address", "spec.metricsServer")
	c := canary(flaggerv1.CanaryMetric{Name: "m", Query: "up", ThresholdRange: anyValue})
	c.Spec.MetricsServer = "prometheus:9090"
	r = checkOneMetric(t, &Checker{}, c)
	wantFailure(t, r, ErrInvalidMetric, `"prometheus:9090" is not an http(s) URL`)
}

func TestInlineQuery(t *testing.T) {
	p := newFakeProm(t, constant(one("3")))
	r := checkOneMetric(t, &Checker{DefaultAddress: p.URL}, canary(flaggerv1.CanaryMetric{
		Name: "404s", Threshold: 5,
		Query: `sum(rate(x{ns="{{ namespace }}",w="{{ target }}"}[{{ interval }}]))`,
	}))
	if r.Err != nil || r.Value != 3 {
		t.Fatalf("got %v, %v", r.Value, r.Err)
	}
	if want := `sum(rate(x{ns="test",w="podinfo"}[1m]))`; r.Query != want {
		t.Fatalf("Query = %q, want %q", r.Query, want)
	}
	// Flagger ignored inline render errors; Herald fails the check and says where.
	r = checkOneMetric(t, &Checker{DefaultAddress: p.URL}, canary(flaggerv1.CanaryMetric{Name: "bad", Query: `x{a="{{ target }"}`}))
	wantFailure(t, r, ErrInvalidMetric, "spec.analysis.metrics[0].query", "parsing the query template")
}

func metricTemplate(ns, name, query string, provider flaggerv1.MetricTemplateProvider) *flaggerv1.MetricTemplate {
	return &flaggerv1.MetricTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       flaggerv1.MetricTemplateSpec{Provider: provider, Query: query},
	}
}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func TestTemplateMetric(t *testing.T) {
	p := newFakeProm(t, constant(one("1.5")))
	q := `sum(rate(x{ns="{{ namespace }}",code="{{ variables.code }}"}[{{ interval }}]))`
	reader := newReader(t,
		metricTemplate("test", "errors", q, flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: p.URL}),
		metricTemplate("monitoring", "shared", `up{job="{{ name }}"}`, flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: p.URL}),
	)
	k := &Checker{Reader: reader, DefaultAddress: "http://127.0.0.1:1"}
	res := k.Check(context.Background(), canary(
		flaggerv1.CanaryMetric{Name: "5xx", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "errors"},
			TemplateVariables: map[string]string{"code": "500"}, ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(5.0)}},
		flaggerv1.CanaryMetric{Name: "up", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "shared", Namespace: "monitoring"},
			Threshold: 1},
		flaggerv1.CanaryMetric{Name: "5xx-again", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "errors"}},
		flaggerv1.CanaryMetric{Name: "gone", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "missing"}},
	))
	if res[0].Err != nil || res[0].Value != 1.5 {
		t.Fatalf("template metric: %v, %v", res[0].Value, res[0].Err)
	}
	// The interval defaults to 1m (Flagger rendered "" here).
	if want := `sum(rate(x{ns="test",code="500"}[1m]))`; res[0].Query != want {
		t.Fatalf("Query = %q, want %q", res[0].Query, want)
	}
	if res[1].Err == nil || res[1].Err.Error() != "Halt podinfo.test advancement up 1.50 > 1" {
		t.Fatalf("legacy threshold of a template metric is a maximum: %v", res[1].Err)
	}
	wantFailure(t, res[2], ErrInvalidMetric,
		`spec.analysis.metrics[2]: metric template test/errors uses {{ variables.code }} but spec.analysis.metrics[2].templateVariables has no key "code"`)
	wantFailure(t, res[3], ErrInvalidMetric, "spec.analysis.metrics[3].templateRef: metric template test/missing", "not found")
}

func TestTemplateUnsupportedProvider(t *testing.T) {
	p := newFakeProm(t, constant(one("1")))
	reader := newReader(t, metricTemplate("test", "dd", "avg:x{*}", flaggerv1.MetricTemplateProvider{Type: "datadog", Address: p.URL}))
	r := checkOneMetric(t, &Checker{Reader: reader, DefaultAddress: p.URL}, canary(
		flaggerv1.CanaryMetric{Name: "dd", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "dd"}, Threshold: 1}))
	wantFailure(t, r, ErrInvalidMetric, `metric template test/dd: provider type "datadog" is not supported`)
	if len(p.seen()) != 0 {
		t.Fatal("a datadog query was sent to Prometheus")
	}
}

func TestTemplateBadQuery(t *testing.T) {
	reader := newReader(t, metricTemplate("test", "t", "{{ nope }}", flaggerv1.MetricTemplateProvider{Type: "prometheus"}))
	r := checkOneMetric(t, &Checker{Reader: reader, DefaultAddress: "http://127.0.0.1:1"}, canary(
		flaggerv1.CanaryMetric{Name: "t", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "t"}}))
	wantFailure(t, r, ErrInvalidMetric, "metric template test/t: spec.query: parsing the query template", `"nope" not defined`)
}

func TestAddressPrecedence(t *testing.T) {
	servers := map[string]*fakeProm{}
	for _, name := range []string{"default", "canary", "template", "secret"} {
		servers[name] = newFakeProm(t, constant(one("1")))
	}
	reader := newReader(t,
		metricTemplate("test", "with-address", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: servers["template"].URL}),
		metricTemplate("test", "without-address", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus"}),
		metricTemplate("test", "secret-address", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: servers["template"].URL,
			SecretRef: &corev1.LocalObjectReference{Name: "addr"}}),
		secret("test", "addr", map[string]string{"address": servers["secret"].URL}),
	)
	k := &Checker{Reader: reader, DefaultAddress: servers["default"].URL}
	ref := func(n string) *flaggerv1.CrossNamespaceObjectReference {
		return &flaggerv1.CrossNamespaceObjectReference{Name: n}
	}
	for _, tc := range []struct {
		name          string
		metricsServer string
		metric        flaggerv1.CanaryMetric
		want          string
	}{
		{"builtin, no metricsServer", "", flaggerv1.CanaryMetric{Name: RequestSuccessRate}, "default"},
		{"builtin, metricsServer", servers["canary"].URL, flaggerv1.CanaryMetric{Name: RequestSuccessRate}, "canary"},
		{"inline, metricsServer", servers["canary"].URL, flaggerv1.CanaryMetric{Name: "q", Query: "up"}, "canary"},
		{"template address wins", servers["canary"].URL, flaggerv1.CanaryMetric{Name: "t", TemplateRef: ref("with-address")}, "template"},
		{"template without address, metricsServer", servers["canary"].URL, flaggerv1.CanaryMetric{Name: "t", TemplateRef: ref("without-address")}, "canary"},
		{"template without address, default", "", flaggerv1.CanaryMetric{Name: "t", TemplateRef: ref("without-address")}, "default"},
		{"secret address wins", servers["canary"].URL, flaggerv1.CanaryMetric{Name: "t", TemplateRef: ref("secret-address")}, "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]int{}
			for n, s := range servers {
				before[n] = len(s.seen())
			}
			tc.metric.ThresholdRange = anyValue
			c := canary(tc.metric)
			c.Spec.MetricsServer = tc.metricsServer
			if r := checkOneMetric(t, k, c); r.Err != nil {
				t.Fatal(r.Err)
			}
			for n, s := range servers {
				got := len(s.seen()) - before[n]
				if want := map[bool]int{true: 1, false: 0}[n == tc.want]; got != want {
					t.Errorf("server %s got %d queries, want %d", n, got, want)
				}
			}
		})
	}
}

func TestTemplateCredentials(t *testing.T) {
	p := newFakeProm(t, constant(one("1")))
	const ns = "monitoring" // the Secret lives with the template, not with the Canary
	provider := func(secretName string) flaggerv1.MetricTemplateProvider {
		return flaggerv1.MetricTemplateProvider{
			Type: "prometheus", Address: p.URL,
			Headers:   map[string][]string{"X-Scope-OrgID": {"tenant-a"}},
			SecretRef: &corev1.LocalObjectReference{Name: secretName},
		}
	}
	reader := newReader(t,
		metricTemplate(ns, "basic", "up", provider("basic")),
		metricTemplate(ns, "bearer", "up", provider("bearer")),
		metricTemplate(ns, "both", "up", provider("both")),
		metricTemplate(ns, "user-only", "up", provider("user-only")),
		metricTemplate(ns, "empty", "up", provider("empty")),
		metricTemplate(ns, "no-secret", "up", provider("absent")),
		secret(ns, "basic", map[string]string{"username": "herald", "password": "s3cret"}),
		secret(ns, "bearer", map[string]string{"token": "tok-123\n"}),
		secret(ns, "both", map[string]string{"username": "herald", "password": "s3cret", "token": "tok-123"}),
		secret(ns, "user-only", map[string]string{"username": "herald"}),
		secret(ns, "empty", map[string]string{"other": "x"}),
		secret("test", "absent", map[string]string{"token": "in the wrong namespace"}),
	)
	k := &Checker{Reader: reader}
	run := func(name string) (Result, promRequest) {
		t.Helper()
		before := len(p.seen())
		r := checkOneMetric(t, k, canary(flaggerv1.CanaryMetric{
			Name: name, TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: name, Namespace: ns}, ThresholdRange: anyValue}))
		seen := p.seen()
		if len(seen) > before {
			return r, seen[len(seen)-1]
		}
		return r, promRequest{}
	}

	r, req := run("basic")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := req.header.Get("Authorization"); got != "Basic aGVyYWxkOnMzY3JldA==" { // herald:s3cret
		t.Errorf("basic auth header %q", got)
	}
	if got := req.header.Get("X-Scope-OrgID"); got != "tenant-a" {
		t.Errorf("template header %q", got)
	}

	r, req = run("bearer")
	if r.Err != nil || req.header.Get("Authorization") != "Bearer tok-123" {
		t.Errorf("bearer: %v, header %q", r.Err, req.header.Get("Authorization"))
	}
	r, req = run("both")
	if r.Err != nil || req.header.Get("Authorization") != "Bearer tok-123" {
		t.Errorf("token and basic keys: %v, header %q; want the token", r.Err, req.header.Get("Authorization"))
	}

	for _, tc := range []struct{ name, want string }{
		{"user-only", `Secret monitoring/user-only has a "username" key but no "password" key`},
		{"empty", `Secret monitoring/empty has none of the keys "token", "username" and "password", or "address"`},
		{"no-secret", "reading Secret monitoring/absent"},
	} {
		r, req = run(tc.name)
		wantFailure(t, r, ErrInvalidMetric, "metric template monitoring/"+tc.name+": spec.provider.secretRef: ", tc.want)
		if req.query != "" {
			t.Errorf("%s: a query was sent despite the bad Secret", tc.name)
		}
	}
}

func TestInsecureSkipVerify(t *testing.T) {
	f := &fakeProm{}
	tlsServer := httptest.NewTLSServer(f.handler(constant(one("7"))))
	t.Cleanup(tlsServer.Close)
	reader := newReader(t,
		metricTemplate("test", "verify", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: tlsServer.URL}),
		metricTemplate("test", "skip", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: tlsServer.URL, InsecureSkipVerify: true}),
	)
	res := (&Checker{Reader: reader}).Check(context.Background(), canary(
		flaggerv1.CanaryMetric{Name: "verify", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "verify"}, ThresholdRange: anyValue},
		flaggerv1.CanaryMetric{Name: "skip", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "skip"}, ThresholdRange: anyValue},
	))
	wantFailure(t, res[0], ErrQueryFailed, "Metric query failed for verify:", "certificate")
	if res[1].Err != nil || res[1].Value != 7 {
		t.Fatalf("insecureSkipVerify: %v, %v", res[1].Value, res[1].Err)
	}
}

func TestNeverPanics(t *testing.T) {
	p := newFakeProm(t, constant(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":["x","y"]}]}}`))
	k := &Checker{DefaultAddress: p.URL} // no Reader
	c := canary(
		flaggerv1.CanaryMetric{},
		flaggerv1.CanaryMetric{Name: "t", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{}},
		flaggerv1.CanaryMetric{Name: "t2", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "x"}},
		flaggerv1.CanaryMetric{Name: "q", Query: "up", ThresholdRange: anyValue},
		flaggerv1.CanaryMetric{Name: RequestDuration},
	)
	c.Spec.TargetRef = flaggerv1.LocalObjectReference{}
	res := k.Check(context.Background(), c)
	if len(res) != 5 {
		t.Fatalf("%d results", len(res))
	}
	wantFailure(t, res[0], ErrInvalidMetric, "spec.analysis.metrics[0]")
	wantFailure(t, res[1], ErrInvalidMetric, "spec.analysis.metrics[1].templateRef.name is empty")
	wantFailure(t, res[2], ErrInvalidMetric, "no reader")
	if res[3].Err == nil || res[4].Err == nil {
		t.Fatalf("a malformed sample passed: %+v", res[3:])
	}
}

func FuzzRender(f *testing.F) {
	for _, s := range []string{istioSuccessRate, istioDuration, httpSuccessRate, `{{ variables.x }}`, `{{ variables }}`,
		`{{ if variables.a }}{{ end }}`, `{{ range $k, $v := variables }}{{ $k }}{{ end }}`, `{{ template "x" }}`,
		`{{ define "x" }}{{ variables.y }}{{ end }}{{ template "x" }}`, `{{ index variables "k" }}`, `{{`, `}}`, `{{ .A.B }}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		_, _ = Render(q, fullModel())
	})
}

/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/egress"
)

// Each case is a metrics server a Canary author controls, answering a shape Prometheus
// never sends. None may crash the checker or pass the check.
func TestHostileAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  string
		kind  error
		parts []string
	}{
		{"null sample", `{"status":"success","data":{"resultType":"vector","result":[null]}}`, ErrNoValues, []string{"a null sample"}},
		{"null value", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,null]}]}}`,
			ErrNoValues, []string{"a sample without a value"}},
		{"sample without value", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}`,
			ErrNoValues, []string{"a sample without a value"}},
		{"null result", `{"status":"success","data":{"resultType":"vector","result":null}}`, ErrNoValues, nil},
		// Prometheus's client refuses these itself.
		{"null scalar", `{"status":"success","data":{"resultType":"scalar","result":null}}`, ErrQueryFailed, nil},
		{"scalar without value", `{"status":"success","data":{"resultType":"scalar","result":[1700000000]}}`, ErrQueryFailed, nil},
		{"unquoted value", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,5]}]}}`,
			ErrQueryFailed, []string{"quoted"}},
		{"NaN", one("NaN"), ErrNaN, nil},
		{"Inf", one("+Inf"), ErrNaN, nil},
		{"null among two", `{"status":"success","data":{"resultType":"vector","result":[null,{"metric":{},"value":[1,"1"]}]}}`,
			ErrSeveralSeries, []string{"null"}},
		{"histogram", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"1"}]}]}}`,
			ErrUnexpectedType, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeProm(t, constant(tc.body))
			r := checkOneMetric(t, &Checker{DefaultAddress: p.URL}, canary(flaggerv1.CanaryMetric{Name: "m", Query: "up", ThresholdRange: anyValue}))
			wantFailure(t, r, tc.kind, tc.parts...)
		})
	}
}

func TestHugeBodyIsCutAtTheLimit(t *testing.T) {
	var sent atomic.Int64
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[`))
		chunk := []byte(strings.Repeat(`{"metric":{"a":"b"},"value":[1,"1"]},`, 1000))
		for sent.Load() < 1<<30 { // 1 GiB, unless the client stops reading
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(huge.Close)
	start := time.Now()
	r := checkOneMetric(t, &Checker{DefaultAddress: huge.URL}, canary(flaggerv1.CanaryMetric{Name: "m", Query: "up", ThresholdRange: anyValue}))
	wantFailure(t, r, ErrQueryFailed, "larger than 10 MiB")
	if !errors.Is(r.Err, ErrTooLarge) {
		t.Errorf("%v is not ErrTooLarge", r.Err)
	}
	if d := time.Since(start); d > QueryTimeout {
		t.Errorf("the check took %s", d)
	}
	// The server may have buffered a little more in the socket, never the gigabyte.
	if n := sent.Load(); n > 64<<20 {
		t.Errorf("the server sent %d MiB before the checker stopped reading", n>>20)
	}
}

func TestStalledServerIsBoundedByTheQueryTimeout(t *testing.T) {
	old := queryTimeout
	queryTimeout = 300 * time.Millisecond
	t.Cleanup(func() { queryTimeout = old })
	release := make(chan struct{})
	// Headers and the start of a body, then nothing: the read hangs, not the connect.
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":`))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(stall.Close)
	t.Cleanup(func() { close(release) })
	start := time.Now()
	r := checkOneMetric(t, &Checker{DefaultAddress: stall.URL}, canary(flaggerv1.CanaryMetric{Name: "m", Query: "up", ThresholdRange: anyValue}))
	wantFailure(t, r, ErrQueryFailed, "no complete answer within 300ms")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the check took %s", d)
	}
}

// panicReader stands for a bug anywhere below the checker's goroutines.
type panicReader struct{ client.Reader }

func (panicReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	panic("boom")
}

func TestPanicInACheckFailsOnlyThatCheck(t *testing.T) {
	p := newFakeProm(t, constant(one("1")))
	k := &Checker{Reader: panicReader{}, DefaultAddress: p.URL}
	res := k.Check(context.Background(), canary(
		flaggerv1.CanaryMetric{Name: "t", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "x"}},
		flaggerv1.CanaryMetric{Name: "q", Query: "up", ThresholdRange: anyValue},
	))
	wantFailure(t, res[0], ErrQueryFailed, "Metric t: the check failed unexpectedly: boom")
	if res[1].Err != nil {
		t.Errorf("the other check failed too: %v", res[1].Err)
	}
}

func TestTemplateBombs(t *testing.T) {
	p := newFakeProm(t, constant(one("1")))
	var doubling strings.Builder
	doubling.WriteString(`{{ $x := "aaaaaaaaaaaaaaaa" }}`)
	for range 40 {
		doubling.WriteString(`{{ $x = printf "%s%s" $x $x }}`)
	}
	doubling.WriteString(`{{ $x }}`)
	manyVars := map[string]string{}
	for i := range 200 {
		manyVars[strings.Repeat("k", 8)+string(rune('a'+i%26))+strings.Repeat("z", i)] = strings.Repeat("v", 1000)
	}
	for _, tc := range []struct {
		name, query string
		vars        map[string]string
		want        string
	}{
		{"range of wide printf", `{{range 20}}{{printf "%01000000d" 0}}{{end}}`, nil, "may only loop over {{ variables }}"},
		{"one wide printf", `{{printf "%01000000d" 0}}`, nil, "larger than 64 KiB"},
		{"star width", `{{printf "%*d" 999999 0}}`, nil, "larger than 64 KiB"},
		{"doubling a string", doubling.String(), nil, "larger than 64 KiB"},
		{"nested escapers", `{{ $x := "` + strings.Repeat("<", 20000) + `" }}{{ js (js (html $x)) }}`, nil, "larger than 64 KiB"},
		{"print of many args", `{{ $x := printf "%060000d" 0 }}{{ print $x $x $x $x $x $x $x $x }}`, nil, "larger than 64 KiB"},
		{"output of a loop over variables", `{{ range $k, $v := variables }}{{ $v }}{{ $v }}{{ end }}`, manyVars, "larger than 64 KiB"},
		{"nested loops", `{{ range variables }}{{ range variables }}{{ end }}{{ end }}`, manyVars, "not in another loop"},
		{"recursion", `{{ define "a" }}{{ template "a" }}{{ end }}{{ template "a" }}`, nil, "cannot define templates"},
		{"template call", `{{ template "query" }}`, nil, "cannot call templates"},
		{"block", `{{ block "b" . }}x{{ end }}`, nil, "cannot define templates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reader := newReader(t, metricTemplate("test", "bomb", tc.query, flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: p.URL}))
			start := time.Now()
			r := checkOneMetric(t, &Checker{Reader: reader}, canary(flaggerv1.CanaryMetric{
				Name: "bomb", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "bomb"}, TemplateVariables: tc.vars, ThresholdRange: anyValue}))
			wantFailure(t, r, ErrInvalidMetric, "metric template test/bomb: spec.query: ", tc.want)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("rendering took %s", d)
			}
		})
	}
	if n := len(p.seen()); n != 0 {
		t.Errorf("%d bombs reached Prometheus", n)
	}
	// A loop over variables that stays small is a legitimate template.
	q, err := Render(`{{ range $k, $v := variables }}{{ $k }}="{{ $v }}",{{ end }}`, Model{Variables: map[string]string{"a": "1", "b": "2"}})
	if err != nil || q != `a="1",b="2",` {
		t.Errorf("a small loop: %q, %v", q, err)
	}
}

func TestEscapeVariable(t *testing.T) {
	for in, want := range map[string]string{
		"podinfo":                   "podinfo",
		"podinfo|frontend":          "podinfo|frontend",
		`a\\.b`:                     `a\\.b`, // written for Flagger: PromQL reads the regex a\.b
		`a\.b`:                      `a\\.b`, // \. is no PromQL escape: the backslash is literal
		`"} or vector(1) or up{a="`: `\"} or vector(1) or up{a=\"`,
		`ends with a backslash\`:    `ends with a backslash\\`,
		`\"`:                        `\"`,
		"line\nbreak":               `line\nbreak`,
		`\x41\u00e9\101\q`:          `\x41\u00e9\101\\q`,
		`\x4`:                       `\\x4`,
		`5m`:                        `5m`,
		`"`:                         `\"`,
		`\\"`:                       `\\\"`,
	} {
		if got := EscapeVariable(in); got != want {
			t.Errorf("EscapeVariable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTemplateVariablesCannotLeaveTheirString(t *testing.T) {
	p := newFakeProm(t, constant(one("1")))
	reader := newReader(t, metricTemplate("team-b", "errors", `sum(rate(http_requests_total{app="{{ variables.app }}"}[1m]))`,
		flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: p.URL}))
	c := canary(flaggerv1.CanaryMetric{Name: "e", ThresholdRange: anyValue,
		TemplateRef:       &flaggerv1.CrossNamespaceObjectReference{Name: "errors", Namespace: "team-b"},
		TemplateVariables: map[string]string{"app": `x"}[1m])) or sum(secret_metric{a="`}})
	r := checkOneMetric(t, &Checker{Reader: reader}, c)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := `sum(rate(http_requests_total{app="x\"}[1m])) or sum(secret_metric{a=\""}[1m]))`
	if got := p.seen()[0].query; got != want {
		t.Errorf("query sent\n%s\nwant\n%s", got, want)
	}
}

func TestTemplateCredentialsGoOnlyToTheTemplatesAddress(t *testing.T) {
	owner := newFakeProm(t, constant(one("1")))   // team-b's Prometheus, named by its template
	canarys := newFakeProm(t, constant(one("1"))) // the server a team-a Canary names
	reader := newReader(t,
		metricTemplate("team-b", "named", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: owner.URL,
			Headers:   map[string][]string{"X-Scope-OrgID": {"team-b"}, "Authorization": {"Bearer literal"}},
			SecretRef: &corev1.LocalObjectReference{Name: "creds"}}),
		metricTemplate("team-b", "unnamed", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus",
			Headers:   map[string][]string{"X-Scope-OrgID": {"team-b"}, "authorization": {"Bearer literal"}, "Cookie": {"s=1"}},
			SecretRef: &corev1.LocalObjectReference{Name: "creds"}}),
		secret("team-b", "creds", map[string]string{"token": "team-b-token"}),
	)
	k := &Checker{Reader: reader}
	run := func(tmpl string) Result {
		c := canary(flaggerv1.CanaryMetric{Name: tmpl, ThresholdRange: anyValue,
			TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: tmpl, Namespace: "team-b"}})
		c.Namespace = "team-a"
		c.Spec.MetricsServer = canarys.URL
		return checkOneMetric(t, k, c)
	}
	if r := run("named"); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := owner.seen()[0].header.Get("Authorization"); got != "Bearer team-b-token" {
		t.Errorf("the template's own address got Authorization %q", got)
	}
	if r := run("unnamed"); r.Err != nil {
		t.Fatal(r.Err)
	}
	seen := canarys.seen()
	if len(seen) != 1 {
		t.Fatalf("the Canary's server got %d queries", len(seen))
	}
	h := seen[0].header
	for _, name := range []string{"Authorization", "Cookie"} {
		if v := h.Get(name); v != "" {
			t.Errorf("the Canary's server received the template's %s %q", name, v)
		}
	}
	if h.Get("X-Scope-OrgID") != "team-b" {
		t.Errorf("a header that is no credential should still be sent: %v", h)
	}
}

func TestNoCrossNamespaceRefs(t *testing.T) {
	p := newFakeProm(t, constant(one("1")))
	reader := newReader(t, metricTemplate("team-b", "t", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: p.URL}),
		metricTemplate("test", "t", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: p.URL}))
	k := &Checker{Reader: reader, NoCrossNamespaceRefs: true}
	r := checkOneMetric(t, k, canary(flaggerv1.CanaryMetric{Name: "t", ThresholdRange: anyValue,
		TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "t", Namespace: "team-b"}}))
	wantFailure(t, r, ErrInvalidMetric, `spec.analysis.metrics[0].templateRef.namespace: "team-b" is not the Canary's namespace "test"`, "-no-cross-namespace-refs")
	for _, ns := range []string{"", "test"} {
		r = checkOneMetric(t, k, canary(flaggerv1.CanaryMetric{Name: "t", ThresholdRange: anyValue,
			TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "t", Namespace: ns}}))
		if r.Err != nil {
			t.Errorf("namespace %q: %v", ns, r.Err)
		}
	}
	if n := len(p.seen()); n != 2 {
		t.Errorf("%d queries, want 2", n)
	}
}

func TestMetricsServerEgress(t *testing.T) {
	p := newFakeProm(t, constant(one("1")))
	other := newFakeProm(t, constant(one("1")))
	var redirectTo atomic.Value
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, redirectTo.Load().(string), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	reader := newReader(t,
		metricTemplate("test", "redirecting", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: redirector.URL,
			SecretRef: &corev1.LocalObjectReference{Name: "creds"}}),
		secret("test", "creds", map[string]string{"token": "tok"}))
	k := &Checker{Reader: reader}
	tmpl := flaggerv1.CanaryMetric{Name: "r", ThresholdRange: anyValue, TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "redirecting"}}

	for _, addr := range []string{"http://169.254.169.254", "http://[fe80::1]:9090", "http://metadata.google.internal"} {
		c := canary(flaggerv1.CanaryMetric{Name: "m", Query: "up", ThresholdRange: anyValue})
		c.Spec.MetricsServer = addr
		r := checkOneMetric(t, k, c)
		wantFailure(t, r, ErrInvalidMetric, "refused by Herald's egress policy")
		if !errors.Is(r.Err, egress.ErrRefused) {
			t.Errorf("%s: %v is not egress.ErrRefused", addr, r.Err)
		}
	}

	redirectTo.Store("http://169.254.169.254/api/v1/query")
	wantFailure(t, checkOneMetric(t, k, canary(tmpl)), ErrQueryFailed, "169.254.169.254", "redirect")
	redirectTo.Store(other.URL + "/api/v1/query")
	wantFailure(t, checkOneMetric(t, k, canary(tmpl)), ErrQueryFailed, "redirects are followed only to the same host")
	if n := len(other.seen()); n != 0 {
		t.Errorf("a redirect to another host was followed (%d queries)", n)
	}

	// A same-host redirect is followed, without the credentials.
	same := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old/api/v1/query" {
			http.Redirect(w, r, "/api/v1/query?"+r.URL.RawQuery, http.StatusFound)
			return
		}
		p.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(same.Close)
	reader = newReader(t,
		metricTemplate("test", "moved", "up", flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: same.URL + "/old",
			SecretRef: &corev1.LocalObjectReference{Name: "creds"}}),
		secret("test", "creds", map[string]string{"token": "tok"}))
	before := len(p.seen())
	r := checkOneMetric(t, &Checker{Reader: reader}, canary(flaggerv1.CanaryMetric{Name: "m", ThresholdRange: anyValue,
		TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "moved"}}))
	// Prometheus's client POSTs; a 302 turns it into a GET without the form, which the
	// server answers without a query: what matters is what was sent.
	_ = r
	seen := p.seen()[before:]
	if len(seen) != 1 {
		t.Fatalf("the redirect target got %d requests", len(seen))
	}
	if a := seen[0].header.Get("Authorization"); a != "" {
		t.Errorf("the redirected request carried Authorization %q", a)
	}
}

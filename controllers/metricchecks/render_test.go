/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func fullModel() Model {
	return Model{
		Name: "podinfo", Namespace: "test", Target: "podinfo-deploy", Service: "podinfo-svc",
		Ingress: "podinfo-ing", Route: "podinfo-route", Interval: "30s",
		Variables: map[string]string{"direction": "inbound", "code": "404"},
	}
}

func TestRenderEveryVariable(t *testing.T) {
	q := `{{ name }}|{{ namespace }}|{{ target }}|{{ service }}|{{ ingress }}|{{ route }}|{{ interval }}|{{ variables.direction }}|{{variables.code}}`
	got, err := Render(q, fullModel())
	if err != nil {
		t.Fatal(err)
	}
	want := "podinfo|test|podinfo-deploy|podinfo-svc|podinfo-ing|podinfo-route|30s|inbound|404"
	if got != want {
		t.Fatalf("Render = %q, want %q", got, want)
	}
}

func TestRenderTrimsAndKeepsQueryText(t *testing.T) {
	q := "\n  sum(rate(x{a=\"{{ target }}\"}[{{ interval }}]))\n  / 2\n"
	got, err := Render(q, fullModel())
	if err != nil {
		t.Fatal(err)
	}
	if want := "sum(rate(x{a=\"podinfo-deploy\"}[30s]))\n  / 2"; got != want {
		t.Fatalf("Render = %q, want %q", got, want)
	}
}

func TestRenderMissingVariable(t *testing.T) {
	for _, vars := range []map[string]string{nil, {"other": "x"}} {
		m := fullModel()
		m.Variables = vars
		_, err := Render(`rate(x{d="{{ variables.direction }}"}[1m])`, m)
		var missing *MissingVariableError
		if !errors.As(err, &missing) {
			t.Fatalf("variables %v: error %v is not a MissingVariableError", vars, err)
		}
		if missing.Key != "direction" || !strings.Contains(err.Error(), `templateVariables has no key "direction"`) {
			t.Fatalf("variables %v: error %q does not name the key", vars, err)
		}
	}
}

func TestRenderMissingVariableInsideBranchNotTaken(t *testing.T) {
	// Only a variable that is actually used is required.
	got, err := Render(`{{ if false }}{{ variables.nope }}{{ end }}ok`, fullModel())
	if err != nil || got != "ok" {
		t.Fatalf("Render = %q, %v; want ok, nil", got, err)
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct{ name, query, want string }{
		{"unclosed action", `sum(x{a="{{ target }"})`, "parsing the query template"},
		{"unknown function", `{{ workload }}`, `function "workload" not defined`},
		{"field of the nil data", `{{ .Target }}`, "rendering the query template"},
		{"unterminated if", `{{ if true }}x`, "parsing the query template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.query, fullModel())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render(%q) = %q, %v; want an error containing %q", tc.query, got, err, tc.want)
			}
		})
	}
}

func TestRenderLeavesDollarPlaceholders(t *testing.T) {
	// $namespace and friends belong to other tools: they pass through untouched.
	got, err := Render(`x{ns="$namespace"}[$interval]`, fullModel())
	if err != nil || got != `x{ns="$namespace"}[$interval]` {
		t.Fatalf("Render = %q, %v", got, err)
	}
}

func TestModelForDefaults(t *testing.T) {
	c := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: flaggerv1.CanarySpec{
			TargetRef: flaggerv1.LocalObjectReference{Kind: "Deployment", Name: "podinfo-deploy"},
		},
	}
	m := ModelFor(c, flaggerv1.CanaryMetric{Name: "x", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "t"}})
	want := Model{Name: "podinfo", Namespace: "test", Target: "podinfo-deploy", Service: "podinfo-deploy",
		Ingress: "podinfo-deploy", Route: "podinfo-deploy", Interval: "1m"}
	if m.Name != want.Name || m.Namespace != want.Namespace || m.Target != want.Target || m.Service != want.Service ||
		m.Ingress != want.Ingress || m.Route != want.Route || m.Interval != want.Interval || len(m.Variables) != 0 {
		t.Fatalf("ModelFor = %+v, want %+v", m, want)
	}
	// The MetricTemplate interval defect of Flagger: {{ interval }} must never be empty.
	q, err := Render(`rate(x[{{ interval }}])`, m)
	if err != nil || q != "rate(x[1m])" {
		t.Fatalf("Render = %q, %v", q, err)
	}
}

func TestModelForOverrides(t *testing.T) {
	c := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: flaggerv1.CanarySpec{
			TargetRef:  flaggerv1.LocalObjectReference{Kind: "Deployment", Name: "podinfo-deploy"},
			Service:    flaggerv1.CanaryService{Name: "podinfo-svc"},
			IngressRef: &flaggerv1.LocalObjectReference{Kind: "Ingress", Name: "podinfo-ing"},
			RouteRef:   &flaggerv1.LocalObjectReference{Kind: "ApisixRoute", Name: "podinfo-route"},
		},
	}
	vars := map[string]string{"direction": "inbound"}
	m := ModelFor(c, flaggerv1.CanaryMetric{Name: "x", Interval: "45s", TemplateVariables: vars})
	if m.Service != "podinfo-svc" || m.Ingress != "podinfo-ing" || m.Route != "podinfo-route" || m.Interval != "45s" ||
		m.Variables["direction"] != "inbound" {
		t.Fatalf("ModelFor = %+v", m)
	}
	m.Variables["direction"] = "outbound"
	if vars["direction"] != "inbound" {
		t.Fatal("ModelFor shares the Canary's templateVariables map; changing the model changed the spec")
	}
}

func BenchmarkRender(b *testing.B) {
	q, _ := BuiltinQuery(flaggerv1.ProviderIstio, RequestSuccessRate)
	m := fullModel()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(q, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderWithVariables(b *testing.B) {
	q := `sum(rate(response_total{namespace="{{ namespace }}",deployment=~"{{ target }}",direction="{{ variables.direction }}"}[{{ interval }}]))`
	m := fullModel()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(q, m); err != nil {
			b.Fatal(err)
		}
	}
}

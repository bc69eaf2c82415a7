/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package canary

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func TestMetricTemplate(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(s *flaggerv1.MetricTemplateSpec)
		errs    []string
		errText []string
	}{
		{name: "valid"},
		{name: "all template functions", mutate: func(s *flaggerv1.MetricTemplateSpec) {
			s.Query = `sum(rate(m{ns="{{ namespace }}",c="{{ name }}",t="{{ target }}",s="{{ service }}",` +
				`i="{{ ingress }}",r="{{ route }}",d="{{ variables.direction }}"}[{{ interval }}]))`
		}},
		{name: "no address", mutate: func(s *flaggerv1.MetricTemplateSpec) { s.Provider.Address = "" }},
		{name: "secretRef", mutate: func(s *flaggerv1.MetricTemplateSpec) {
			s.Provider.SecretRef = &corev1.LocalObjectReference{Name: "prom-auth"}
		}},
		{name: "secretRef without name", mutate: func(s *flaggerv1.MetricTemplateSpec) {
			s.Provider.SecretRef = &corev1.LocalObjectReference{}
		}, errs: []string{"spec.provider.secretRef.name"}},
		{name: "datadog", mutate: func(s *flaggerv1.MetricTemplateSpec) { s.Provider.Type = "datadog" },
			errs: []string{"spec.provider.type"}, errText: []string{`Unsupported value: "datadog": supported values: "prometheus"`}},
		{name: "type missing", mutate: func(s *flaggerv1.MetricTemplateSpec) { s.Provider.Type = "" },
			errs: []string{"spec.provider.type"}},
		{name: "address relative", mutate: func(s *flaggerv1.MetricTemplateSpec) { s.Provider.Address = "prometheus:9090" },
			errs: []string{"spec.provider.address"}},
		{name: "address scheme", mutate: func(s *flaggerv1.MetricTemplateSpec) { s.Provider.Address = "tcp://prometheus:9090" },
			errs: []string{"spec.provider.address"}},
		{name: "query missing", mutate: func(s *flaggerv1.MetricTemplateSpec) { s.Query = "" },
			errs: []string{"spec.query"}},
		{name: "query unclosed action", mutate: func(s *flaggerv1.MetricTemplateSpec) { s.Query = "sum(x[{{ interval ])" },
			errs: []string{"spec.query"}, errText: []string{"not a valid Go template"}},
		{name: "query unknown function", mutate: func(s *flaggerv1.MetricTemplateSpec) { s.Query = "sum(x{a='{{ workload }}'})" },
			errs: []string{"spec.query"}, errText: []string{`"workload" not defined`}},
		{name: "everything wrong", mutate: func(s *flaggerv1.MetricTemplateSpec) {
			s.Provider.Type, s.Provider.Address, s.Query = "influxdb", "::", "{{"
		}, errs: []string{"spec.provider.type", "spec.provider.address", "spec.query"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mt := metricTemplate("test", "latency")
			if tc.mutate != nil {
				tc.mutate(&mt.Spec)
			}
			warns, err := (&MetricTemplateValidator{}).ValidateCreate(context.Background(), mt)
			if warns != nil {
				t.Errorf("warnings %q", warns)
			}
			checkErrs(t, err, tc.errs, tc.errText)
		})
	}
}

func TestAlertProvider(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(s *flaggerv1.AlertProviderSpec)
		errs    []string
		errText []string
	}{
		{name: "valid"},
		{name: "every type", mutate: func(s *flaggerv1.AlertProviderSpec) {}},
		{name: "secretRef only", mutate: func(s *flaggerv1.AlertProviderSpec) {
			s.Address, s.SecretRef = "", &corev1.LocalObjectReference{Name: "slack-url"}
		}},
		{name: "proxy", mutate: func(s *flaggerv1.AlertProviderSpec) { s.Proxy = "http://proxy.corp:3128" }},
		{name: "type unknown", mutate: func(s *flaggerv1.AlertProviderSpec) { s.Type = "pagerduty" },
			errs: []string{"spec.type"}, errText: []string{`"pagerduty"`}},
		{name: "type missing", mutate: func(s *flaggerv1.AlertProviderSpec) { s.Type = "" },
			errs: []string{"spec.type"}},
		{name: "neither address nor secretRef", mutate: func(s *flaggerv1.AlertProviderSpec) { s.Address = "" },
			errs: []string{"spec.address"}, errText: []string{"address or secretRef"}},
		{name: "secretRef without name", mutate: func(s *flaggerv1.AlertProviderSpec) {
			s.Address, s.SecretRef = "", &corev1.LocalObjectReference{}
		}, errs: []string{"spec.secretRef.name"}},
		{name: "address not a URL, not echoed", mutate: func(s *flaggerv1.AlertProviderSpec) { s.Address = "hooks.slack.com/services/SECRET" },
			errs: []string{"spec.address"}},
		{name: "address scheme", mutate: func(s *flaggerv1.AlertProviderSpec) { s.Address = "mailto:ops@example.com" },
			errs: []string{"spec.address"}},
		{name: "proxy invalid", mutate: func(s *flaggerv1.AlertProviderSpec) { s.Proxy = "proxy.corp:3128" },
			errs: []string{"spec.proxy"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			types := []string{"slack"}
			if tc.name == "every type" {
				types = SupportedAlertProviders
			}
			for _, typ := range types {
				ap := alertProvider("test", "chat")
				ap.Spec.Type = typ
				if tc.mutate != nil {
					tc.mutate(&ap.Spec)
				}
				warns, err := (&AlertProviderValidator{}).ValidateCreate(context.Background(), ap)
				if warns != nil {
					t.Errorf("warnings %q", warns)
				}
				checkErrs(t, err, tc.errs, tc.errText)
				if err != nil && strings.Contains(err.Error(), "SECRET") {
					t.Errorf("the address is echoed: %v", err)
				}
			}
		})
	}
}

func TestProvidersUpdateDelete(t *testing.T) {
	ctx := context.Background()
	badMT := metricTemplate("test", "x")
	badMT.Spec.Provider.Type = "datadog"
	mtv := &MetricTemplateValidator{}
	if _, err := mtv.ValidateUpdate(ctx, badMT, badMT.DeepCopy()); err != nil {
		t.Errorf("unchanged MetricTemplate spec refused: %v", err)
	}
	changed := badMT.DeepCopy()
	changed.Spec.Query = "sum(y)"
	if _, err := mtv.ValidateUpdate(ctx, badMT, changed); err == nil {
		t.Error("changed MetricTemplate spec not checked")
	}
	if _, err := mtv.ValidateDelete(ctx, badMT); err != nil {
		t.Error(err)
	}

	badAP := alertProvider("test", "x")
	badAP.Spec.Type = "pagerduty"
	apv := &AlertProviderValidator{}
	if _, err := apv.ValidateUpdate(ctx, badAP, badAP.DeepCopy()); err != nil {
		t.Errorf("unchanged AlertProvider spec refused: %v", err)
	}
	changedAP := badAP.DeepCopy()
	changedAP.Spec.Channel = "ops"
	if _, err := apv.ValidateUpdate(ctx, badAP, changedAP); err == nil {
		t.Error("changed AlertProvider spec not checked")
	}
	if _, err := apv.ValidateDelete(ctx, badAP); err != nil {
		t.Error(err)
	}
}

func checkErrs(t *testing.T, err error, wantFields, wantText []string) {
	t.Helper()
	if len(wantFields) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want errors at %q, got none", wantFields)
	}
	if got := causes(t, err); strings.Join(got, ",") != strings.Join(wantFields, ",") {
		t.Errorf("error fields %q, want %q\n%v", got, wantFields, err)
	}
	containsAll(t, "error", []string{err.Error()}, wantText)
}

/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1beta1

import (
	"testing"
	"time"
)

func canaryWith(a *CanaryAnalysis) *Canary {
	return &Canary{Spec: CanarySpec{
		TargetRef: LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
		Service:   CanaryService{Port: 9898},
		Analysis:  a,
	}}
}

func ptr[T any](v T) *T { return &v }

func TestGetAnalysis(t *testing.T) {
	current, legacy := &CanaryAnalysis{Interval: "1m"}, &CanaryAnalysis{Interval: "2m"}
	tests := []struct {
		name             string
		analysis, legacy *CanaryAnalysis
		want             *CanaryAnalysis
	}{
		{"neither", nil, nil, nil},
		{"analysis only", current, nil, current},
		{"canaryAnalysis only", nil, legacy, legacy},
		{"analysis wins", current, legacy, current},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := canaryWith(tt.analysis)
			c.Spec.CanaryAnalysis = tt.legacy
			if got := c.GetAnalysis(); got != tt.want {
				t.Errorf("GetAnalysis() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGetAnalysisInterval(t *testing.T) {
	tests := []struct {
		name     string
		analysis *CanaryAnalysis
		want     time.Duration
	}{
		{"no analysis", nil, 60 * time.Second},
		{"unset", &CanaryAnalysis{}, 60 * time.Second},
		{"unparsable", &CanaryAnalysis{Interval: "abc"}, 60 * time.Second},
		{"below floor", &CanaryAnalysis{Interval: "5s"}, 10 * time.Second},
		{"at floor", &CanaryAnalysis{Interval: "10s"}, 10 * time.Second},
		{"seconds", &CanaryAnalysis{Interval: "15s"}, 15 * time.Second},
		{"minutes", &CanaryAnalysis{Interval: "1m"}, time.Minute},
		{"compound", &CanaryAnalysis{Interval: "1m30s"}, 90 * time.Second},
		{"milliseconds", &CanaryAnalysis{Interval: "500ms"}, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canaryWith(tt.analysis).GetAnalysisInterval(); got != tt.want {
				t.Errorf("GetAnalysisInterval() = %v, want %v", got, tt.want)
			}
		})
	}
	legacy := canaryWith(nil)
	legacy.Spec.CanaryAnalysis = &CanaryAnalysis{Interval: "2m"}
	if got := legacy.GetAnalysisInterval(); got != 2*time.Minute {
		t.Errorf("canaryAnalysis interval: got %v, want 2m", got)
	}
}

func TestGetProgressDeadlineSeconds(t *testing.T) {
	tests := []struct {
		name string
		set  *int32
		want int
	}{
		{"unset", nil, 600},
		{"set", ptr(int32(60)), 60},
		{"zero", ptr(int32(0)), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := canaryWith(nil)
			c.Spec.ProgressDeadlineSeconds = tt.set
			if got := c.GetProgressDeadlineSeconds(); got != tt.want {
				t.Errorf("GetProgressDeadlineSeconds() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestGetMaxWeight(t *testing.T) {
	tests := []struct {
		name     string
		analysis *CanaryAnalysis
		want     int
	}{
		{"no analysis", nil, 100},
		{"unset", &CanaryAnalysis{StepWeight: 10}, 100},
		{"set", &CanaryAnalysis{MaxWeight: 50, StepWeight: 10}, 50},
		{"stepWeights win", &CanaryAnalysis{MaxWeight: 50, StepWeights: []int{1, 5, 30}}, 30},
		{"stepWeights capped", &CanaryAnalysis{StepWeights: []int{50, 120}}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canaryWith(tt.analysis).GetMaxWeight(); got != tt.want {
				t.Errorf("GetMaxWeight() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestGetAnalysisThreshold(t *testing.T) {
	tests := []struct {
		name     string
		analysis *CanaryAnalysis
		want     int
	}{
		{"no analysis", nil, 1},
		{"unset", &CanaryAnalysis{}, 1},
		{"negative", &CanaryAnalysis{Threshold: -3}, 1},
		{"set", &CanaryAnalysis{Threshold: 5}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canaryWith(tt.analysis).GetAnalysisThreshold(); got != tt.want {
				t.Errorf("GetAnalysisThreshold() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestReadyThresholds(t *testing.T) {
	tests := []struct {
		name               string
		analysis           *CanaryAnalysis
		primary, canaryPct int
	}{
		{"no analysis", nil, 100, 100},
		{"unset", &CanaryAnalysis{}, 100, 100},
		{"set", &CanaryAnalysis{PrimaryReadyThreshold: ptr(50), CanaryReadyThreshold: ptr(0)}, 50, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := canaryWith(tt.analysis)
			if got := c.GetAnalysisPrimaryReadyThreshold(); got != tt.primary {
				t.Errorf("primary = %d, want %d", got, tt.primary)
			}
			if got := c.GetAnalysisCanaryReadyThreshold(); got != tt.canaryPct {
				t.Errorf("canary = %d, want %d", got, tt.canaryPct)
			}
		})
	}
}

func TestGetServiceNames(t *testing.T) {
	tests := []struct {
		name, service             string
		apex, primary, canaryName string
	}{
		{"target name", "", "podinfo", "podinfo-primary", "podinfo-canary"},
		{"service name", "web", "web", "web-primary", "web-canary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := canaryWith(nil)
			c.Spec.Service.Name = tt.service
			apex, primary, canary := c.GetServiceNames()
			if apex != tt.apex || primary != tt.primary || canary != tt.canaryName {
				t.Errorf("GetServiceNames() = %s, %s, %s", apex, primary, canary)
			}
		})
	}
}

func TestDeploymentStrategy(t *testing.T) {
	match := []HTTPMatchRequest{{Headers: map[string]StringMatch{"x-canary": {Exact: "always"}}}}
	tests := []struct {
		name     string
		analysis *CanaryAnalysis
		want     string
	}{
		{"no analysis", nil, StrategyCanary},
		{"step weight", &CanaryAnalysis{StepWeight: 10}, StrategyCanary},
		{"step weights", &CanaryAnalysis{StepWeights: []int{5, 10}}, StrategyCanary},
		{"iterations", &CanaryAnalysis{Iterations: 10}, StrategyBlueGreen},
		{"iterations and mirror", &CanaryAnalysis{Iterations: 10, Mirror: true}, StrategyBlueGreen},
		{"iterations and match", &CanaryAnalysis{Iterations: 10, Match: match}, StrategyABTesting},
		{"match without iterations", &CanaryAnalysis{StepWeight: 10, Match: match}, StrategyCanary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canaryWith(tt.analysis).DeploymentStrategy(); got != tt.want {
				t.Errorf("DeploymentStrategy() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSkipAnalysis(t *testing.T) {
	tests := []struct {
		name     string
		analysis *CanaryAnalysis
		legacy   *CanaryAnalysis
		skip     bool
		want     bool
	}{
		{"no analysis at all", nil, nil, false, true},
		{"analysis", &CanaryAnalysis{}, nil, false, false},
		{"canaryAnalysis", nil, &CanaryAnalysis{}, false, false},
		{"skipAnalysis", &CanaryAnalysis{}, nil, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := canaryWith(tt.analysis)
			c.Spec.CanaryAnalysis = tt.legacy
			c.Spec.SkipAnalysis = tt.skip
			if got := c.SkipAnalysis(); got != tt.want {
				t.Errorf("SkipAnalysis() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSmallDefaults(t *testing.T) {
	if got := (&CanaryMetric{}).GetMetricInterval(); got != "1m" {
		t.Errorf("metric interval default = %s", got)
	}
	if got := (&CanaryMetric{Interval: "30s"}).GetMetricInterval(); got != "30s" {
		t.Errorf("metric interval = %s", got)
	}
	for timeout, want := range map[string]time.Duration{"": 10 * time.Second, "x": 10 * time.Second, "5s": 5 * time.Second} {
		if got := (&CanaryWebhook{Timeout: timeout}).GetTimeout(); got != want {
			t.Errorf("webhook timeout %q = %v, want %v", timeout, got, want)
		}
	}
	if got := (&SessionAffinity{}).GetMaxAge(); got != 86400 {
		t.Errorf("cookie max age default = %d", got)
	}
	if got := (&SessionAffinity{MaxAge: 60}).GetMaxAge(); got != 60 {
		t.Errorf("cookie max age = %d", got)
	}
}

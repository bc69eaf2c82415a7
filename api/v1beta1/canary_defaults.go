/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1beta1

import "time"

// Defaults applied when a Canary leaves a setting out (Flagger's values).
const (
	// DefaultProgressDeadlineSeconds is the progress deadline when none is set.
	DefaultProgressDeadlineSeconds = 600
	// DefaultAnalysisInterval is the analysis interval when none (or an unparsable one) is set.
	DefaultAnalysisInterval = 60 * time.Second
	// MinAnalysisInterval is the shortest analysis interval; shorter ones are raised to it.
	MinAnalysisInterval = 10 * time.Second
	// DefaultMaxWeight is the highest canary weight when none is set.
	DefaultMaxWeight = 100
	// DefaultReadyThreshold is the percentage of available pods when none is set.
	DefaultReadyThreshold = 100
	// DefaultMetricInterval is the window of builtin and inline-query metrics without one.
	DefaultMetricInterval = "1m"
	// DefaultWebhookTimeout is the timeout of a webhook without one.
	DefaultWebhookTimeout = 10 * time.Second
	// DefaultCookieMaxAge is the max age of a session-affinity cookie, in seconds.
	DefaultCookieMaxAge = 86400
)

// Deployment strategies, as returned by DeploymentStrategy.
const (
	StrategyCanary    = "canary"
	StrategyBlueGreen = "blue-green"
	StrategyABTesting = "ab-testing"
)

// GetAnalysis returns spec.analysis, or the deprecated spec.canaryAnalysis when analysis is
// unset. It returns nil when neither is set.
func (c *Canary) GetAnalysis() *CanaryAnalysis {
	if c.Spec.Analysis != nil {
		return c.Spec.Analysis
	}
	return c.Spec.CanaryAnalysis
}

// GetAnalysisInterval returns the analysis interval: 60s when unset or unparsable, and at
// least 10s.
func (c *Canary) GetAnalysisInterval() time.Duration {
	a := c.GetAnalysis()
	if a == nil || a.Interval == "" {
		return DefaultAnalysisInterval
	}
	d, err := time.ParseDuration(a.Interval)
	if err != nil {
		return DefaultAnalysisInterval
	}
	if d < MinAnalysisInterval {
		return MinAnalysisInterval
	}
	return d
}

// GetProgressDeadlineSeconds returns spec.progressDeadlineSeconds, 600 when unset.
func (c *Canary) GetProgressDeadlineSeconds() int {
	if c.Spec.ProgressDeadlineSeconds != nil {
		return int(*c.Spec.ProgressDeadlineSeconds)
	}
	return DefaultProgressDeadlineSeconds
}

// GetProgressDeadline is GetProgressDeadlineSeconds as a duration.
func (c *Canary) GetProgressDeadline() time.Duration {
	return time.Duration(c.GetProgressDeadlineSeconds()) * time.Second
}

// GetMaxWeight returns the highest canary weight of a run. With stepWeights it is the last
// step (at most 100) and maxWeight is ignored; otherwise maxWeight, 100 when unset.
func (c *Canary) GetMaxWeight() int {
	a := c.GetAnalysis()
	if a == nil {
		return DefaultMaxWeight
	}
	if n := len(a.StepWeights); n > 0 {
		return min(a.StepWeights[n-1], DefaultMaxWeight)
	}
	if a.MaxWeight > 0 {
		return a.MaxWeight
	}
	return DefaultMaxWeight
}

// GetAnalysisThreshold returns the number of failed checks that rolls a run back; 1 when
// unset or not positive.
func (c *Canary) GetAnalysisThreshold() int {
	if a := c.GetAnalysis(); a != nil && a.Threshold > 0 {
		return a.Threshold
	}
	return 1
}

// GetAnalysisPrimaryReadyThreshold returns the percentage of primary pods that must be
// available, 100 when unset.
func (c *Canary) GetAnalysisPrimaryReadyThreshold() int {
	if a := c.GetAnalysis(); a != nil && a.PrimaryReadyThreshold != nil {
		return *a.PrimaryReadyThreshold
	}
	return DefaultReadyThreshold
}

// GetAnalysisCanaryReadyThreshold returns the percentage of canary pods that must be
// available, 100 when unset.
func (c *Canary) GetAnalysisCanaryReadyThreshold() int {
	if a := c.GetAnalysis(); a != nil && a.CanaryReadyThreshold != nil {
		return *a.CanaryReadyThreshold
	}
	return DefaultReadyThreshold
}

// GetServiceNames returns the names of the apex, primary and canary Services: the apex is
// spec.service.name, or the target's name when unset.
func (c *Canary) GetServiceNames() (apex, primary, canary string) {
	apex = c.Spec.Service.Name
	if apex == "" {
		apex = c.Spec.TargetRef.Name
	}
	return apex, apex + "-primary", apex + "-canary"
}

// DeploymentStrategy returns ab-testing when iterations and match conditions are set,
// blue-green when only iterations are set, and canary otherwise.
func (c *Canary) DeploymentStrategy() string {
	a := c.GetAnalysis()
	if a == nil || a.Iterations <= 0 {
		return StrategyCanary
	}
	if len(a.Match) > 0 {
		return StrategyABTesting
	}
	return StrategyBlueGreen
}

// SkipAnalysis reports whether new revisions are promoted without analysis: when
// spec.skipAnalysis is set or the Canary has no analysis at all.
func (c *Canary) SkipAnalysis() bool {
	return c.Spec.SkipAnalysis || c.GetAnalysis() == nil
}

// GetMetricInterval returns the window of a builtin or inline-query metric, 1m when unset.
func (m *CanaryMetric) GetMetricInterval() string {
	if m.Interval == "" {
		return DefaultMetricInterval
	}
	return m.Interval
}

// GetTimeout returns the request timeout of a webhook: 10s when unset or unparsable.
func (w *CanaryWebhook) GetTimeout() time.Duration {
	if w.Timeout == "" {
		return DefaultWebhookTimeout
	}
	d, err := time.ParseDuration(w.Timeout)
	if err != nil || d <= 0 {
		return DefaultWebhookTimeout
	}
	return d
}

// GetMaxAge returns the max age of the session-affinity cookie in seconds, 86400 when unset.
func (s *SessionAffinity) GetMaxAge() int {
	if s.MaxAge <= 0 {
		return DefaultCookieMaxAge
	}
	return s.MaxAge
}

// Providers (spec.provider, and Herald's -mesh-provider) that Herald routes traffic with.
// The Gateway API provider has Flagger's three spellings: the bare name and the two API
// versions of HTTPRoute it can write (gateway.networking.k8s.io/v1, the default, or v1beta1
// for implementations that serve only the older version).
const (
	ProviderIstio             = "istio"
	ProviderKubernetes        = "kubernetes"
	ProviderGatewayAPI        = "gatewayapi"
	ProviderGatewayAPIV1      = "gatewayapi:v1"
	ProviderGatewayAPIV1Beta1 = "gatewayapi:v1beta1"
)

// SupportedProviders are the values of spec.provider that Herald implements; the Canary
// webhook refuses others by name.
var SupportedProviders = []string{ProviderIstio, ProviderKubernetes, ProviderGatewayAPI, ProviderGatewayAPIV1, ProviderGatewayAPIV1Beta1}

// IsGatewayAPI reports whether provider is one of the Gateway API spellings.
func IsGatewayAPI(provider string) bool {
	switch provider {
	case ProviderGatewayAPI, ProviderGatewayAPIV1, ProviderGatewayAPIV1Beta1:
		return true
	}
	return false
}

// GetProvider returns spec.provider, or defaultProvider (the controller's -mesh-provider)
// when unset, or istio when both are empty, as Flagger.
func (c *Canary) GetProvider(defaultProvider string) string {
	switch {
	case c.Spec.Provider != "":
		return c.Spec.Provider
	case defaultProvider != "":
		return defaultProvider
	}
	return ProviderIstio
}

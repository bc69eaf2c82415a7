/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"fmt"
	"slices"
	"strings"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// Names of the builtin metrics.
const (
	RequestSuccessRate = "request-success-rate"
	RequestDuration    = "request-duration"
)

// builtin is the query of a builtin metric for one provider.
type builtin struct {
	query string
	// scale converts the query's unit to the metric's: the success rate is a percentage
	// and the duration is in milliseconds.
	scale float64
}

// The Istio queries read the sidecars' telemetry as the destination reports it; Istio's
// duration histogram is already in milliseconds.
const istioSuccessRate = `
sum(
  rate(
    istio_requests_total{
      reporter="destination",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}",
      response_code!~"5.*"
    }[{{ interval }}]
  )
)
/
sum(
  rate(
    istio_requests_total{
      reporter="destination",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}"
    }[{{ interval }}]
  )
)
* 100`

const istioDuration = `
histogram_quantile(0.99,
  sum(
    rate(
      istio_request_duration_milliseconds_bucket{
        reporter="destination",
        destination_workload_namespace="{{ namespace }}",
        destination_workload=~"{{ target }}"
      }[{{ interval }}]
    )
  ) by (le)
)`

// Without a mesh there is no proxy telemetry: the kubernetes provider reads the
// application's own HTTP histogram (http_request_duration_seconds, as podinfo and most Go
// services expose it), scraped with the pod-name and namespace labels Prometheus's
// Kubernetes pod discovery usually relabels to. The pod-name pattern matches the
// ReplicaSet pods of the target (<target>-<hash>-<suffix>), not those of <target>-primary.
const podPattern = `{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)`

const httpSuccessRate = `
sum(
  rate(
    http_request_duration_seconds_count{
      kubernetes_namespace="{{ namespace }}",
      kubernetes_pod_name=~"` + podPattern + `",
      status!~"5.*"
    }[{{ interval }}]
  )
)
/
sum(
  rate(
    http_request_duration_seconds_count{
      kubernetes_namespace="{{ namespace }}",
      kubernetes_pod_name=~"` + podPattern + `"
    }[{{ interval }}]
  )
)
* 100`

const httpDuration = `
histogram_quantile(0.99,
  sum(
    rate(
      http_request_duration_seconds_bucket{
        kubernetes_namespace="{{ namespace }}",
        kubernetes_pod_name=~"` + podPattern + `"
      }[{{ interval }}]
    )
  ) by (le)
)`

// httpBuiltins read the application's own histogram, which is in seconds.
var httpBuiltins = map[string]builtin{
	RequestSuccessRate: {query: httpSuccessRate, scale: 1},
	RequestDuration:    {query: httpDuration, scale: 1000},
}

// The Gateway API provider has no telemetry of its own (each implementation names its
// metrics differently), so, as in Flagger, its builtins are the kubernetes provider's: the
// application's histogram. MetricTemplates query an implementation's metrics.
var builtins = map[string]map[string]builtin{
	flaggerv1.ProviderIstio: {
		RequestSuccessRate: {query: istioSuccessRate, scale: 1},
		RequestDuration:    {query: istioDuration, scale: 1},
	},
	flaggerv1.ProviderKubernetes:        httpBuiltins,
	flaggerv1.ProviderGatewayAPI:        httpBuiltins,
	flaggerv1.ProviderGatewayAPIV1:      httpBuiltins,
	flaggerv1.ProviderGatewayAPIV1Beta1: httpBuiltins,
}

// IsBuiltin reports whether name is a builtin metric.
func IsBuiltin(name string) bool {
	return slices.Contains(BuiltinNames, name)
}

// BuiltinNames are the names of the builtin metrics.
var BuiltinNames = []string{RequestSuccessRate, RequestDuration}

// BuiltinQuery returns the unrendered query of a builtin metric for a provider.
func BuiltinQuery(provider, name string) (string, error) {
	b, err := builtinFor(provider, name)
	return b.query, err
}

func builtinFor(provider, name string) (builtin, error) {
	if !IsBuiltin(name) {
		return builtin{}, fmt.Errorf("%q is not a builtin metric (builtins: %s, %s)", name, RequestSuccessRate, RequestDuration)
	}
	qs, ok := builtins[provider]
	if !ok {
		return builtin{}, fmt.Errorf("the builtin metric %s has no query for provider %q (known: %s); use a MetricTemplate", name, provider, strings.Join(flaggerv1.SupportedProviders, ", "))
	}
	return qs[name], nil
}

/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MetricTemplateKind is the kind name of a MetricTemplate.
const MetricTemplateKind = "MetricTemplate"

// Metric provider types.
const (
	MetricProviderPrometheus      = "prometheus"
	MetricProviderInfluxDB        = "influxdb"
	MetricProviderDatadog         = "datadog"
	MetricProviderExternalMetrics = "externalmetrics"
	MetricProviderStackdriver     = "stackdriver"
	MetricProviderCloudWatch      = "cloudwatch"
	MetricProviderNewRelic        = "newrelic"
	MetricProviderGraphite        = "graphite"
	MetricProviderDynatrace       = "dynatrace"
	MetricProviderKeptn           = "keptn"
	MetricProviderSplunk          = "splunk"
)

// MetricTemplate is a query, run against a metrics provider, that a Canary metric refers to.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=all
// +kubebuilder:metadata:annotations="helm.sh/resource-policy=keep"
// +kubebuilder:printcolumn:name="Provider",type="string",JSONPath=".spec.provider.type"
type MetricTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MetricTemplateSpec `json:"spec"`

	// +optional
	Status MetricTemplateStatus `json:"status,omitzero"`
}

// MetricTemplateList is a list of MetricTemplates.
//
// +kubebuilder:object:root=true
type MetricTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []MetricTemplate `json:"items"`
}

// MetricTemplateSpec is the desired state of a MetricTemplate.
type MetricTemplateSpec struct {
	// Provider that runs the query.
	Provider MetricTemplateProvider `json:"provider"`

	// Query is a Go text/template rendered with the Canary's names, the metric interval and
	// the metric's template variables.
	Query string `json:"query"`
}

// MetricTemplateProvider is the metrics service that runs a template's query.
type MetricTemplateProvider struct {
	// Type of the provider.
	// +kubebuilder:validation:Enum=prometheus;influxdb;datadog;externalmetrics;stackdriver;cloudwatch;newrelic;graphite;dynatrace;keptn;splunk
	Type string `json:"type"`

	// Address of the provider's API.
	// +optional
	Address string `json:"address,omitempty"`

	// Headers added to every request to the provider.
	// +optional
	Headers map[string][]string `json:"headers,omitempty"`

	// SecretRef names a Secret, in the template's namespace, that holds the credentials.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`

	// Region of the provider (CloudWatch).
	// +optional
	Region string `json:"region,omitempty"`

	// InsecureSkipVerify skips the verification of the provider's certificate.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// MetricTemplateStatus is the observed state of a MetricTemplate.
type MetricTemplateStatus struct {
	// +optional
	Conditions []MetricTemplateCondition `json:"conditions,omitempty"`
}

// MetricTemplateCondition is a condition of a MetricTemplate.
type MetricTemplateCondition struct {
	Type   string                 `json:"type"`
	Status corev1.ConditionStatus `json:"status"`
	// +optional
	LastUpdateTime metav1.Time `json:"lastUpdateTime,omitzero"`
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitzero"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

func init() {
	SchemeBuilder.Register(&MetricTemplate{}, &MetricTemplateList{})
}

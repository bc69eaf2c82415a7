/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// CanaryKind is the kind name of a Canary.
const CanaryKind = "Canary"

// Canary describes how a workload is released: the routing objects Herald generates for it,
// and the analysis that decides whether a new revision is promoted or rolled back.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=all
// +kubebuilder:metadata:annotations="helm.sh/resource-policy=keep"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="Weight",type="string",JSONPath=".status.canaryWeight"
// +kubebuilder:printcolumn:name="Suspended",type="boolean",JSONPath=".spec.suspend",priority=1
// +kubebuilder:printcolumn:name="FailedChecks",type="string",JSONPath=".status.failedChecks",priority=1
// +kubebuilder:printcolumn:name="Interval",type="string",JSONPath=".spec.analysis.interval",priority=1
// +kubebuilder:printcolumn:name="Mirror",type="boolean",JSONPath=".spec.analysis.mirror",priority=1
// +kubebuilder:printcolumn:name="StepWeight",type="string",JSONPath=".spec.analysis.stepWeight",priority=1
// +kubebuilder:printcolumn:name="StepWeights",type="string",JSONPath=".spec.analysis.stepWeights",priority=1
// +kubebuilder:printcolumn:name="MaxWeight",type="string",JSONPath=".spec.analysis.maxWeight",priority=1
// +kubebuilder:printcolumn:name="LastTransitionTime",type="string",JSONPath=".status.lastTransitionTime"
type Canary struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CanarySpec `json:"spec"`

	// +optional
	Status CanaryStatus `json:"status,omitzero"`
}

// CanaryList is a list of Canaries.
//
// +kubebuilder:object:root=true
type CanaryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Canary `json:"items"`
}

// CanarySpec is the desired state of a Canary.
type CanarySpec struct {
	// Provider selects the router (service mesh, ingress or plain Kubernetes) for this
	// Canary, overriding the controller's default. The schema accepts every value Flagger
	// knows; the Canary webhook refuses the ones Herald does not implement.
	// +kubebuilder:validation:Enum=apisix;appmesh;"appmesh:v1beta2";contour;gatewayapi;"gatewayapi:v1";"gatewayapi:v1beta1";gloo;istio;knative;kubernetes;kuma;linkerd;nginx;osm;skipper;"smi:v1alpha1";"smi:v1alpha2";"smi:v1alpha3";traefik
	// +optional
	Provider string `json:"provider,omitempty"`

	// MetricsServer is the Prometheus address used for builtin and inline-query metrics,
	// overriding the controller's default.
	// +optional
	MetricsServer string `json:"metricsServer,omitempty"`

	// TargetRef is the workload released by this Canary.
	// +kubebuilder:validation:XValidation:rule="self.kind in ['Deployment', 'DaemonSet', 'StatefulSet', 'Service']",message="kind must be one of Deployment, DaemonSet, StatefulSet, Service",fieldPath=".kind"
	TargetRef LocalObjectReference `json:"targetRef"`

	// AutoscalerRef is the HorizontalPodAutoscaler or KEDA ScaledObject of the target;
	// a copy of it is made for the primary.
	// +optional
	AutoscalerRef *AutoscalerReference `json:"autoscalerRef,omitempty"`

	// IngressRef is the Ingress used by the NGINX and Skipper routers.
	// +kubebuilder:validation:XValidation:rule="self.kind == 'Ingress'",message="kind must be Ingress",fieldPath=".kind"
	// +optional
	IngressRef *LocalObjectReference `json:"ingressRef,omitempty"`

	// RouteRef is the ApisixRoute used by the APISIX router.
	// +kubebuilder:validation:XValidation:rule="self.kind == 'ApisixRoute'",message="kind must be ApisixRoute",fieldPath=".kind"
	// +optional
	RouteRef *LocalObjectReference `json:"routeRef,omitempty"`

	// UpstreamRef is a Gloo Upstream whose settings are copied into the generated upstreams.
	// +kubebuilder:validation:XValidation:rule="has(self.apiVersion) && size(self.apiVersion) > 0",message="apiVersion is required",fieldPath=".apiVersion"
	// +kubebuilder:validation:XValidation:rule="has(self.kind) && self.kind == 'Upstream'",message="kind must be Upstream",fieldPath=".kind"
	// +optional
	UpstreamRef *CrossNamespaceObjectReference `json:"upstreamRef,omitempty"`

	// Service describes the Services and routing objects generated for the target.
	Service CanaryService `json:"service"`

	// Analysis describes how a new revision is checked and how traffic is shifted to it.
	// +optional
	Analysis *CanaryAnalysis `json:"analysis,omitempty"`

	// CanaryAnalysis is the deprecated name of Analysis. It is kept in the schema so that old
	// manifests are not pruned; Analysis wins when both are set.
	// +optional
	CanaryAnalysis *CanaryAnalysis `json:"canaryAnalysis,omitempty"`

	// ProgressDeadlineSeconds is how long a rollout may make no progress before the Canary
	// fails (default 600).
	// +kubebuilder:validation:Minimum=0
	// +optional
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// SkipAnalysis promotes every new revision without analysing it.
	// +optional
	SkipAnalysis bool `json:"skipAnalysis,omitempty"`

	// RevertOnDeletion restores the target and the routing to their original state when the
	// Canary is deleted.
	// +optional
	RevertOnDeletion bool `json:"revertOnDeletion,omitempty"`

	// Suspend pauses the Canary: nothing is reconciled until it is unset.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// LocalObjectReference names an object in the namespace of the Canary.
type LocalObjectReference struct {
	// APIVersion of the referent.
	APIVersion string `json:"apiVersion"`

	// Kind of the referent.
	Kind string `json:"kind"`

	// Name of the referent.
	Name string `json:"name"`
}

// CrossNamespaceObjectReference names an object, optionally in another namespace.
type CrossNamespaceObjectReference struct {
	// APIVersion of the referent.
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`

	// Kind of the referent.
	// +optional
	Kind string `json:"kind,omitempty"`

	// Name of the referent.
	Name string `json:"name"`

	// Namespace of the referent; defaults to the namespace of the Canary.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// AutoscalerReference names the autoscaler of the target.
type AutoscalerReference struct {
	// APIVersion of the autoscaler.
	APIVersion string `json:"apiVersion"`

	// Kind of the autoscaler.
	// +kubebuilder:validation:Enum=HorizontalPodAutoscaler;ScaledObject
	Kind string `json:"kind"`

	// Name of the autoscaler.
	Name string `json:"name"`

	// PrimaryScalerQueries replaces, by trigger name, the queries of the primary's
	// ScaledObject.
	// +optional
	PrimaryScalerQueries map[string]string `json:"primaryScalerQueries,omitempty"`

	// PrimaryScalerReplicas overrides the replica bounds of the primary's autoscaler.
	// +optional
	PrimaryScalerReplicas *ScalerReplicas `json:"primaryScalerReplicas,omitempty"`
}

// ScalerReplicas overrides the replica bounds of an autoscaler.
type ScalerReplicas struct {
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
}

// CanaryService describes the Services and routing objects generated for the target.
type CanaryService struct {
	// Name of the apex Service; defaults to the target's name. The primary and canary
	// Services are named <name>-primary and <name>-canary.
	// +optional
	Name string `json:"name,omitempty"`

	// Port of the generated Services.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// PortName of the generated Services' port (default http).
	// +optional
	PortName string `json:"portName,omitempty"`

	// TargetPort is the container port, by number or name (default: Port).
	// +optional
	TargetPort intstr.IntOrString `json:"targetPort,omitzero"`

	// AppProtocol of the generated Services' port.
	// +optional
	AppProtocol string `json:"appProtocol,omitempty"`

	// TrafficDistribution is copied to the generated Services.
	// +kubebuilder:validation:Enum=PreferClose;PreferSameZone;PreferSameNode
	// +optional
	TrafficDistribution string `json:"trafficDistribution,omitempty"`

	// PortDiscovery adds every container port of the target to the generated Services.
	// +optional
	PortDiscovery bool `json:"portDiscovery,omitempty"`

	// Headless makes the generated Services headless (clusterIP: None).
	// +optional
	Headless bool `json:"headless,omitempty"`

	// Timeout of an HTTP or gRPC request, a duration such as 15s.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')",message="must be a duration such as 15s, 1m or 1m30s"
	// +optional
	Timeout string `json:"timeout,omitempty"`

	// BackendTimeout is the timeout of a request to a backend (Gateway API only).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')",message="must be a duration such as 15s, 1m or 1m30s"
	// +optional
	BackendTimeout string `json:"backendTimeout,omitempty"`

	// Gateways of the generated Istio VirtualService (default: mesh).
	// +optional
	Gateways []string `json:"gateways,omitempty"`

	// GatewayRefs are the parents of the generated Gateway API HTTPRoute or GRPCRoute: Gateways,
	// or for an east-west (GAMMA) route the apex Service.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	GatewayRefs []ParentReference `json:"gatewayRefs,omitempty"`

	// Hosts of the generated VirtualService, or hostnames of the HTTPRoute or GRPCRoute.
	// +optional
	Hosts []string `json:"hosts,omitempty"`

	// Delegation generates an Istio delegate VirtualService (no hosts, no gateways).
	// +optional
	Delegation bool `json:"delegation,omitempty"`

	// TrafficPolicy of the generated Istio DestinationRules.
	// +optional
	TrafficPolicy *TrafficPolicy `json:"trafficPolicy,omitempty"`

	// Match conditions of the generated route.
	// +optional
	Match []HTTPMatchRequest `json:"match,omitempty"`

	// Rewrite of the request URI or authority.
	// +optional
	Rewrite *HTTPRewrite `json:"rewrite,omitempty"`

	// Retries policy of the generated route.
	// +optional
	Retries *HTTPRetry `json:"retries,omitempty"`

	// Headers operations of the generated route.
	// +optional
	Headers *Headers `json:"headers,omitempty"`

	// Mirror filters of the generated HTTPRoute (Gateway API). Unrelated to
	// analysis.mirror.
	// +optional
	Mirror []HTTPRequestMirrorFilter `json:"mirror,omitempty"`

	// CorsPolicy of the generated route.
	// +optional
	CorsPolicy *CorsPolicy `json:"corsPolicy,omitempty"`

	// MeshName of the generated App Mesh objects.
	// +optional
	MeshName string `json:"meshName,omitempty"`

	// Backends of the generated App Mesh virtual nodes.
	// +optional
	Backends []string `json:"backends,omitempty"`

	// Apex metadata is added to the apex Service (and to the generated VirtualService or
	// HTTPRoute).
	// +optional
	Apex *CustomMetadata `json:"apex,omitempty"`

	// Primary metadata is added to the primary Service.
	// +optional
	Primary *CustomMetadata `json:"primary,omitempty"`

	// Canary metadata is added to the canary Service.
	// +optional
	Canary *CustomMetadata `json:"canary,omitempty"`

	// UnmanagedMetadata lists label and annotation keys that others set on the generated
	// Services and that must be kept.
	// +optional
	UnmanagedMetadata *UnmanagedMetadata `json:"unmanagedMetadata,omitempty"`
}

// CustomMetadata holds labels and annotations added to a generated object.
type CustomMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// UnmanagedMetadata lists metadata keys that are left alone on generated objects.
type UnmanagedMetadata struct {
	// +optional
	Labels []string `json:"labels,omitempty"`
	// +optional
	Annotations []string `json:"annotations,omitempty"`
}

// CanaryAnalysis describes how a new revision is checked and how traffic is shifted to it.
//
// +kubebuilder:validation:XValidation:rule="!has(self.stepWeight) || !has(self.maxWeight) || self.maxWeight == 0 || self.stepWeight <= self.maxWeight",message="stepWeight must not be greater than maxWeight",fieldPath=".stepWeight"
type CanaryAnalysis struct {
	// Interval between two analysis checks, a duration such as 30s or 1m (default 1m,
	// at least 10s).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')",message="must be a duration such as 30s, 1m or 1m30s"
	// +optional
	Interval string `json:"interval,omitempty"`

	// Iterations is the number of checks of a blue/green or A/B run.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Iterations int `json:"iterations,omitempty"`

	// Mirror copies traffic to the canary before it receives live traffic.
	// +optional
	Mirror bool `json:"mirror,omitempty"`

	// MirrorWeight is the percentage of traffic mirrored (default 100).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MirrorWeight int `json:"mirrorWeight,omitempty"`

	// MaxWeight is the highest traffic percentage routed to the canary (default 100).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxWeight int `json:"maxWeight,omitempty"`

	// StepWeight is the traffic percentage added after each successful check.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	StepWeight int `json:"stepWeight,omitempty"`

	// StepWeights is an explicit, strictly increasing ladder of traffic percentages.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:Minimum=0
	// +kubebuilder:validation:items:Maximum=100
	// +kubebuilder:validation:XValidation:rule="self.isSorted() && self.all(w, self.exists_one(v, v == w))",message="must be strictly increasing"
	// +optional
	StepWeights []int `json:"stepWeights,omitempty"`

	// StepWeightPromotion is the traffic percentage moved back to the primary per check
	// after promotion; 0 moves it all at once.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	StepWeightPromotion int `json:"stepWeightPromotion,omitempty"`

	// Threshold is the number of failed checks after which the canary is rolled back.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Threshold int `json:"threshold,omitempty"`

	// PrimaryReadyThreshold is the percentage of primary pods that must be available
	// (default 100).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	PrimaryReadyThreshold *int `json:"primaryReadyThreshold,omitempty"`

	// CanaryReadyThreshold is the percentage of canary pods that must be available
	// (default 100).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	CanaryReadyThreshold *int `json:"canaryReadyThreshold,omitempty"`

	// Alerts sent during the analysis.
	// +optional
	Alerts []CanaryAlert `json:"alerts,omitempty"`

	// Metrics checked at every analysis step.
	// +kubebuilder:validation:MaxItems=100
	// +optional
	Metrics []CanaryMetric `json:"metrics,omitempty"`

	// Webhooks called during the analysis.
	// +kubebuilder:validation:MaxItems=100
	// +optional
	Webhooks []CanaryWebhook `json:"webhooks,omitempty"`

	// Match conditions of A/B testing.
	// +optional
	Match []HTTPMatchRequest `json:"match,omitempty"`

	// SessionAffinity keeps a user on the version it first reached during a run.
	// +optional
	SessionAffinity *SessionAffinity `json:"sessionAffinity,omitempty"`
}

// SessionAffinity describes the cookies that pin users to a version.
//
// +kubebuilder:validation:XValidation:rule="!has(self.primaryCookieName) || self.primaryCookieName != self.cookieName",message="primaryCookieName must differ from cookieName",fieldPath=".primaryCookieName"
type SessionAffinity struct {
	// CookieName is the name of the cookie that pins users to the canary.
	// +kubebuilder:validation:MinLength=1
	CookieName string `json:"cookieName"`

	// PrimaryCookieName is the name of the cookie that pins users to the primary.
	// +optional
	PrimaryCookieName string `json:"primaryCookieName,omitempty"`

	// Domain attribute of the cookie.
	// +optional
	Domain string `json:"domain,omitempty"`

	// HTTPOnly attribute of the cookie.
	// +optional
	HTTPOnly bool `json:"httpOnly,omitempty"`

	// MaxAge of the cookie in seconds (default 86400).
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxAge int `json:"maxAge,omitempty"`

	// Partitioned attribute of the cookie.
	// +optional
	Partitioned bool `json:"partitioned,omitempty"`

	// Path attribute of the cookie.
	// +optional
	Path string `json:"path,omitempty"`

	// SameSite attribute of the cookie.
	// +kubebuilder:validation:Enum=Strict;Lax;None
	// +optional
	SameSite string `json:"sameSite,omitempty"`

	// Secure attribute of the cookie.
	// +optional
	Secure bool `json:"secure,omitempty"`
}

// CanaryMetric is a metric checked at every analysis step.
type CanaryMetric struct {
	// Name of the metric; request-success-rate and request-duration are builtin.
	Name string `json:"name"`

	// Interval is the time window of the query, a duration such as 1m (default 1m for
	// builtin and inline-query metrics).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')",message="must be a duration such as 30s, 1m or 1m30s"
	// +optional
	Interval string `json:"interval,omitempty"`

	// Threshold is the deprecated single bound of the metric; use ThresholdRange.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=number
	// +optional
	Threshold float64 `json:"threshold,omitempty"`

	// ThresholdRange is the accepted range of the metric.
	// +optional
	ThresholdRange *CanaryThresholdRange `json:"thresholdRange,omitempty"`

	// Query is a deprecated inline Prometheus query; use TemplateRef.
	// +optional
	Query string `json:"query,omitempty"`

	// TemplateRef names the MetricTemplate of the metric.
	// +optional
	TemplateRef *CrossNamespaceObjectReference `json:"templateRef,omitempty"`

	// TemplateVariables are extra variables passed to the MetricTemplate's query.
	// +optional
	TemplateVariables map[string]string `json:"templateVariables,omitempty"`
}

// CanaryThresholdRange is the accepted range of a metric value.
type CanaryThresholdRange struct {
	// Min is the lowest accepted value.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=number
	// +optional
	Min *float64 `json:"min,omitempty"`

	// Max is the highest accepted value.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=number
	// +optional
	Max *float64 `json:"max,omitempty"`
}

// AlertSeverity filters the alerts sent to a provider.
// +kubebuilder:validation:Enum="";info;warn;error
type AlertSeverity string

// Alert severities.
const (
	SeverityInfo  AlertSeverity = "info"
	SeverityWarn  AlertSeverity = "warn"
	SeverityError AlertSeverity = "error"
)

// CanaryAlert sends the Canary's alerts to an AlertProvider.
type CanaryAlert struct {
	// Name of the alert.
	Name string `json:"name"`

	// Severity is the lowest severity sent.
	// +optional
	Severity AlertSeverity `json:"severity,omitempty"`

	// ProviderRef names the AlertProvider.
	ProviderRef CrossNamespaceObjectReference `json:"providerRef"`
}

// HookType says when a webhook is called.
// +kubebuilder:validation:Enum="";confirm-rollout;pre-rollout;rollout;confirm-traffic-increase;confirm-promotion;post-rollout;rollback;event
type HookType string

// Webhook types.
const (
	// RolloutHook is called at every analysis step, before the metrics; "" means the same.
	RolloutHook HookType = "rollout"
	// PreRolloutHook is called before any traffic reaches the canary.
	PreRolloutHook HookType = "pre-rollout"
	// PostRolloutHook is called after the run succeeded or failed.
	PostRolloutHook HookType = "post-rollout"
	// ConfirmRolloutHook gates the start of a run.
	ConfirmRolloutHook HookType = "confirm-rollout"
	// ConfirmPromotionHook gates the promotion.
	ConfirmPromotionHook HookType = "confirm-promotion"
	// ConfirmTrafficIncreaseHook gates every weight increase.
	ConfirmTrafficIncreaseHook HookType = "confirm-traffic-increase"
	// RollbackHook rolls the run back when it answers with success.
	RollbackHook HookType = "rollback"
	// EventHook receives every event of the Canary.
	EventHook HookType = "event"
)

// CanaryWebhook is an HTTP call made during the analysis.
type CanaryWebhook struct {
	// Type says when the webhook is called (default rollout).
	// +optional
	Type HookType `json:"type,omitempty"`

	// Name of the webhook.
	Name string `json:"name"`

	// URL called with a POST request.
	URL string `json:"url"`

	// MuteAlert silences the alerts caused by this webhook.
	// +optional
	MuteAlert bool `json:"muteAlert,omitempty"`

	// Timeout of the request, a duration such as 30s (default 10s).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')",message="must be a duration such as 5s, 1m or 1m30s"
	// +optional
	Timeout string `json:"timeout,omitempty"`

	// Metadata sent in the request payload.
	// +optional
	Metadata map[string]string `json:"metadata,omitempty"`

	// Retries of a failed request.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Retries int `json:"retries,omitempty"`

	// DisableTLS skips the verification of the server's certificate.
	// +optional
	DisableTLS bool `json:"disableTLS,omitempty"`
}

// CanaryPhase is the state of a Canary's current run.
// +kubebuilder:validation:Enum="";Initializing;Initialized;Waiting;Progressing;WaitingPromotion;Promoting;Finalising;Succeeded;Failed;Terminating;Terminated
type CanaryPhase string

// Canary phases.
const (
	CanaryPhaseInitializing     CanaryPhase = "Initializing"
	CanaryPhaseInitialized      CanaryPhase = "Initialized"
	CanaryPhaseWaiting          CanaryPhase = "Waiting"
	CanaryPhaseProgressing      CanaryPhase = "Progressing"
	CanaryPhaseWaitingPromotion CanaryPhase = "WaitingPromotion"
	CanaryPhasePromoting        CanaryPhase = "Promoting"
	CanaryPhaseFinalising       CanaryPhase = "Finalising"
	CanaryPhaseSucceeded        CanaryPhase = "Succeeded"
	CanaryPhaseFailed           CanaryPhase = "Failed"
	CanaryPhaseTerminating      CanaryPhase = "Terminating"
	CanaryPhaseTerminated       CanaryPhase = "Terminated"
)

// CanaryConditionType is the type of a Canary condition.
type CanaryConditionType string

// The condition types of a Canary. Promoted is Flagger's (its reason is the phase); Ready,
// Reconciling and Stalled are the ones kstatus reads (Flux health checks, kubectl wait).
const (
	// PromotedType is True when the Canary is Initialized or Succeeded, False when Failed,
	// Unknown otherwise.
	PromotedType CanaryConditionType = "Promoted"
	// ReadyType is True when the Canary is initialised or its last release was promoted.
	ReadyType CanaryConditionType = "Ready"
	// ReconcilingType is True while a release runs, or while a new Canary waits for its turn
	// to initialise (reason ReasonWaitingForTurn); absent otherwise.
	ReconcilingType CanaryConditionType = "Reconciling"
	// StalledType is True while the Canary cannot proceed without a change (a configuration
	// problem) and after a failed release; absent otherwise.
	StalledType CanaryConditionType = "Stalled"
)

// ReasonWaitingForTurn is the reason of the Reconciling (True) and Ready (False) conditions of
// a new Canary that has no phase yet: it waits for its turn to initialise
// (-initialization-rate).
const ReasonWaitingForTurn = "WaitingForTurn"

// FindCondition is the condition of type t among conds, or nil.
func FindCondition(conds []CanaryCondition, t CanaryConditionType) *CanaryCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// CanaryStatus is the observed state of a Canary.
type CanaryStatus struct {
	// Phase of the current run.
	// +optional
	Phase CanaryPhase `json:"phase,omitempty"`

	// FailedChecks counts the failed checks of the current run.
	// +optional
	FailedChecks int `json:"failedChecks"`

	// CanaryWeight is the traffic percentage routed to the canary.
	// +optional
	CanaryWeight int `json:"canaryWeight"`

	// Iterations counts the completed checks of a blue/green or A/B run.
	// +optional
	Iterations int `json:"iterations"`

	// TrackedConfigs maps "configmap/<name>" and "secret/<name>" to a checksum of the data.
	// +optional
	TrackedConfigs map[string]string `json:"trackedConfigs,omitempty"`

	// LastAppliedSpec is the revision of the target when the status was last synced.
	// +optional
	LastAppliedSpec string `json:"lastAppliedSpec,omitempty"`

	// LastPromotedSpec is the revision last promoted (or initialised).
	// +optional
	LastPromotedSpec string `json:"lastPromotedSpec,omitempty"`

	// LastTransitionTime is when the status was last written.
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitzero"`

	// SessionAffinityCookie is the cookie value that pins users to the canary in this run.
	// +optional
	SessionAffinityCookie string `json:"sessionAffinityCookie,omitempty"`

	// PrimarySessionAffinityCookie is the cookie value that pins users to the primary.
	// +optional
	PrimarySessionAffinityCookie string `json:"primarySessionAffinityCookie,omitempty"`

	// PreviousSessionAffinityCookie is the canary cookie value of the previous run.
	// +optional
	PreviousSessionAffinityCookie string `json:"previousSessionAffinityCookie,omitempty"`

	// ObservedGeneration is the generation of the spec the last completed pass acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions of the Canary: Flagger's Promoted, and Ready, Reconciling and Stalled.
	// +optional
	Conditions []CanaryCondition `json:"conditions,omitempty"`

	// LastRequest is the last request made on the Canary with `kubectl herald` (promote,
	// abort, retry, pause, resume: the herald.dev/request annotation) that Herald handled, and
	// what came of it. Herald acts on a request once: an annotation whose id is this one is
	// not acted on again.
	// +optional
	LastRequest *CanaryRequestStatus `json:"lastRequest,omitempty"`

	// Paused is set while `kubectl herald pause` holds the analysis of a revision: no step,
	// hook or metric check runs until `kubectl herald resume`. It holds only the revision it
	// was asked for; a new revision is analysed as usual.
	// +optional
	Paused *CanaryPauseStatus `json:"paused,omitempty"`

	// LastCheck is the last metric check of an analysis step: each metric's value and
	// whether it was within its thresholds.
	// +optional
	LastCheck *CanaryCheckStatus `json:"lastCheck,omitempty"`
}

// CanaryRequestAction is what a request made with `kubectl herald` asks for.
// +kubebuilder:validation:Enum=promote;abort;retry;pause;resume
type CanaryRequestAction string

// The request actions.
const (
	// RequestPromote ends the analysis of the current revision at its current weight and
	// promotes it.
	RequestPromote CanaryRequestAction = "promote"
	// RequestAbort rolls the current revision back now.
	RequestAbort CanaryRequestAction = "abort"
	// RequestRetry runs the analysis of a Failed revision again, without a change to the
	// target.
	RequestRetry CanaryRequestAction = "retry"
	// RequestPause holds the analysis of the current revision.
	RequestPause CanaryRequestAction = "pause"
	// RequestResume lets a paused analysis go on.
	RequestResume CanaryRequestAction = "resume"
)

// CanaryRequestOutcome is what Herald did with a request.
// +kubebuilder:validation:Enum=Honoured;Refused;Stale
type CanaryRequestOutcome string

// The request outcomes.
const (
	// RequestHonoured: Herald did what the request asked.
	RequestHonoured CanaryRequestOutcome = "Honoured"
	// RequestRefused: the request made no sense in the Canary's state (a promote with no
	// analysis in progress, say); nothing was done.
	RequestRefused CanaryRequestOutcome = "Refused"
	// RequestStale: the request was made for another revision than the current one; nothing
	// was done.
	RequestStale CanaryRequestOutcome = "Stale"
)

// CanaryRequestStatus records a request Herald handled.
type CanaryRequestStatus struct {
	// ID is the request's unique id.
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`

	// Action is what the request asked for; empty when the annotation was not a request.
	// +optional
	Action CanaryRequestAction `json:"action,omitempty"`

	// Revision is the revision the request was made for (status.lastAppliedSpec then).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Revision string `json:"revision,omitempty"`

	// Outcome is what Herald did with it.
	Outcome CanaryRequestOutcome `json:"outcome"`

	// Message says why, in words.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// User who made the request, as the plugin names it (informational).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	User string `json:"user,omitempty"`

	// Time is when Herald handled the request.
	Time metav1.Time `json:"time"`
}

// CanaryPauseStatus is a held analysis.
type CanaryPauseStatus struct {
	// Revision is the revision whose analysis is held.
	// +kubebuilder:validation:MaxLength=128
	Revision string `json:"revision"`

	// Since is when the analysis was paused.
	Since metav1.Time `json:"since"`
}

// CanaryCheckStatus is the result of one metric check of an analysis step.
type CanaryCheckStatus struct {
	// Revision is the revision that was checked.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Revision string `json:"revision,omitempty"`

	// Time is when the check ran.
	Time metav1.Time `json:"time"`

	// Metrics are the results, in the order of spec.analysis.metrics.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Metrics []CanaryMetricResult `json:"metrics,omitempty"`
}

// CanaryMetricResult is one metric's result in a check.
type CanaryMetricResult struct {
	// Name of the metric (spec.analysis.metrics[].name).
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Value measured, as text (milliseconds for request-duration); empty when the query gave
	// no value.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Value string `json:"value,omitempty"`

	// Passed is true when the value was within the metric's thresholds.
	Passed bool `json:"passed"`

	// Message is why the check failed.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message,omitempty"`
}

// CanaryCondition is a condition of a Canary.
type CanaryCondition struct {
	// Type of the condition.
	Type CanaryConditionType `json:"type"`

	// Status of the condition: True, False or Unknown.
	Status corev1.ConditionStatus `json:"status"`

	// LastUpdateTime is when the condition was last written.
	// +optional
	LastUpdateTime metav1.Time `json:"lastUpdateTime,omitzero"`

	// LastTransitionTime is when the status of the condition last changed.
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitzero"`

	// Reason of the condition (the phase).
	// +optional
	Reason string `json:"reason,omitempty"`

	// Message of the condition.
	// +optional
	Message string `json:"message,omitempty"`
}

func init() {
	SchemeBuilder.Register(&Canary{}, &CanaryList{})
}

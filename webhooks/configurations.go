// Package webhooks describes Herald's admission webhook configurations. The handlers live in
// the sub-packages (workload, configs, canary); this package is the one place where their
// paths, selectors, timeouts and failure policies are decided, for both a cluster install
// (a Service clientConfig, written to config/webhook by `make manifests`) and local runs
// (a URL clientConfig pointing at Herald on loopback).
package webhooks

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/herald-rollouts/herald/internal/contract"
)

// Names of the two configurations, also given to the certificate manager for CA injection.
const (
	MutatingName   = "herald-mutating"
	ValidatingName = "herald-validating"
)

// Handler paths on the webhook server.
const (
	WorkloadPath       = "/mutate-workload"
	ConfigPath         = "/mutate-config"
	ScalePath          = "/validate-scale"
	CanaryPath         = "/validate-flagger-app-v1beta1-canary"
	MetricTemplatePath = "/validate-flagger-app-v1beta1-metrictemplate"
	AlertProviderPath  = "/validate-flagger-app-v1beta1-alertprovider"
)

// Endpoint says how the API server reaches Herald: a Service in the cluster, or a URL.
type Endpoint struct {
	// URL is the base URL for local runs, e.g. https://localhost:9443.
	URL string
	// ServiceNamespace and ServiceName identify the webhook Service in a cluster.
	ServiceNamespace, ServiceName string
	ServicePort                   int32
}

func (e Endpoint) clientConfig(path string) admissionregistrationv1.WebhookClientConfig {
	if e.URL != "" {
		return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(e.URL + path)}
	}
	return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
		Namespace: e.ServiceNamespace, Name: e.ServiceName, Path: ptr.To(path), Port: ptr.To(e.ServicePort),
	}}
}

// Timeouts: short, after Gatekeeper's experience that a 5 s mutating timeout broke
// controller-manager leader leases. Mutation of workloads and configs is best effort (the
// controller computes revisions too), so it fails open; Herald's own kinds fail closed.
const (
	mutatingTimeout   = 2
	validatingTimeout = 3
)

// SpecChanged lets a fail-closed validator see creates and spec changes only. A missing
// spec calls Herald (it judges that), and so does anything the expression cannot read.
var SpecChanged = admissionregistrationv1.MatchCondition{
	Name: "created-or-spec-changed",
	Expression: "request.operation == 'CREATE' || !has(object.spec) || !has(oldObject.spec) || " +
		"object.spec != oldObject.spec",
}

// ScaleFromZero lets the scale webhook see only what it may refuse. A Scale carries no labels,
// so no objectSelector can pick Herald's targets; but the handler refuses only a scale-up of an
// idle target, which Herald keeps at zero replicas: every other scale, and every HPA scale
// (an HPA never scales from zero), is not sent to Herald. A Scale's spec.replicas is omitted
// when zero.
var ScaleFromZero = admissionregistrationv1.MatchCondition{
	Name: "scale-up-from-zero",
	Expression: "(!has(oldObject.spec) || !has(oldObject.spec.replicas) || oldObject.spec.replicas == 0) && " +
		"has(object.spec) && has(object.spec.replicas) && object.spec.replicas > 0",
}

// Configurations returns the mutating and validating configurations. heraldNamespace is left
// out of the namespaceSelector together with kube-system, so Herald can never block itself or
// the control plane.
func Configurations(e Endpoint, heraldNamespace string) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	excluded := []string{"kube-system"}
	if heraldNamespace != "" && heraldNamespace != "kube-system" {
		excluded = append(excluded, heraldNamespace)
	}
	nsSelector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excluded,
	}}}
	exists := func(label string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: label, Operator: metav1.LabelSelectorOpExists}}}
	}
	rule := func(group, version string, ops []admissionregistrationv1.OperationType, resources ...string) []admissionregistrationv1.RuleWithOperations {
		return []admissionregistrationv1.RuleWithOperations{{
			Operations: ops,
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources,
				Scope: ptr.To(admissionregistrationv1.NamespacedScope),
			},
		}}
	}
	createUpdate := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	ignore, fail := ptr.To(admissionregistrationv1.Ignore), ptr.To(admissionregistrationv1.Fail)
	none := ptr.To(admissionregistrationv1.SideEffectClassNone)
	equivalent := ptr.To(admissionregistrationv1.Equivalent)
	v1 := []string{"v1"}

	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: MutatingName, Labels: map[string]string{"app.kubernetes.io/name": "herald"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			{
				Name:              "workload.herald.dev",
				ClientConfig:      e.clientConfig(WorkloadPath),
				Rules:             rule("apps", "v1", createUpdate, "deployments", "daemonsets", "statefulsets"),
				ObjectSelector:    exists(contract.LabelCanary),
				NamespaceSelector: nsSelector,
				// The API server calls Herald only when what Herald looks at changed: the pod
				// template (a new revision) or the replicas (transparent replicas), or on create.
				// Status updates, label edits and the controller's own annotations never match.
				MatchConditions: []admissionregistrationv1.MatchCondition{{
					Name: "template-or-replicas-changed",
					Expression: "request.operation == 'CREATE' || object.spec.template != oldObject.spec.template || " +
						"(has(object.spec.replicas) ? object.spec.replicas : -1) != (has(oldObject.spec.replicas) ? oldObject.spec.replicas : -1)",
				}},
				FailurePolicy:           ignore,
				SideEffects:             none,
				TimeoutSeconds:          ptr.To(int32(mutatingTimeout)),
				AdmissionReviewVersions: v1,
				MatchPolicy:             equivalent,
				ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
			},
			{
				Name:                    "config.herald.dev",
				ClientConfig:            e.clientConfig(ConfigPath),
				Rules:                   rule("", "v1", createUpdate, "configmaps", "secrets"),
				ObjectSelector:          exists(contract.LabelTracked),
				NamespaceSelector:       nsSelector,
				FailurePolicy:           ignore,
				SideEffects:             none,
				TimeoutSeconds:          ptr.To(int32(mutatingTimeout)),
				AdmissionReviewVersions: v1,
				MatchPolicy:             equivalent,
				ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
			},
		},
	}

	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: ValidatingName, Labels: map[string]string{"app.kubernetes.io/name": "herald"}},
	}
	own := func(name, path, resource string) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:              name,
			ClientConfig:      e.clientConfig(path),
			Rules:             rule("flagger.app", "v1beta1", createUpdate, resource),
			NamespaceSelector: nsSelector,
			// Fail-closed webhooks see only what they judge: a new object or a new spec.
			// Metadata-only updates (a finalizer removed while a namespace is deleted, a
			// label) never need Herald, so they go through while Herald is down.
			MatchConditions:         []admissionregistrationv1.MatchCondition{SpecChanged},
			FailurePolicy:           fail,
			SideEffects:             none,
			TimeoutSeconds:          ptr.To(int32(validatingTimeout)),
			AdmissionReviewVersions: v1,
			MatchPolicy:             equivalent,
		}
	}
	validating.Webhooks = []admissionregistrationv1.ValidatingWebhook{
		own("canary.herald.dev", CanaryPath, "canaries"),
		own("metrictemplate.herald.dev", MetricTemplatePath, "metrictemplates"),
		own("alertprovider.herald.dev", AlertProviderPath, "alertproviders"),
		{
			// `kubectl scale` goes through the scale subresource, whose Scale object carries no
			// labels, so no objectSelector can narrow it; the handler answers from its cache.
			Name:                    "scale.herald.dev",
			ClientConfig:            e.clientConfig(ScalePath),
			Rules:                   rule("apps", "v1", []admissionregistrationv1.OperationType{admissionregistrationv1.Update}, "deployments/scale", "statefulsets/scale"),
			NamespaceSelector:       nsSelector,
			MatchConditions:         []admissionregistrationv1.MatchCondition{ScaleFromZero},
			FailurePolicy:           ignore,
			SideEffects:             none,
			TimeoutSeconds:          ptr.To(int32(mutatingTimeout)),
			AdmissionReviewVersions: v1,
			MatchPolicy:             equivalent,
		},
	}
	return mutating, validating
}

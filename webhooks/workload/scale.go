package workload

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/herald-rollouts/herald/webhooks/meta"
)

// ScaleHandler is the VALIDATING admission handler for the deployments/scale subresource
// (autoscaling/v1 Scale, UPDATE). The Scale object carries no labels or annotations, so the
// transparent-replicas rule cannot be applied to it; instead a request that would start pods on
// an idle managed target is refused with a message that says how to scale the primary.
// Everything else is allowed. The webhook configuration cannot use an objectSelector for a
// subresource, so every deployments/scale call reaches it: the handler does one cache lookup.
type ScaleHandler struct {
	deployments client.Reader
	opts        Options
}

var _ admission.Handler = (*ScaleHandler)(nil)

// NewScaleHandler returns the scale handler. deployments must serve metav1.PartialObjectMetadata
// for apps/v1 Deployments (a metadata informer cache; labels and annotations are all it reads).
func NewScaleHandler(deployments client.Reader, opts Options) *ScaleHandler {
	return &ScaleHandler{deployments: deployments, opts: opts}
}

var deploymentTypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}

// Handle implements admission.Handler.
func (h *ScaleHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Update || req.SubResource != "scale" ||
		req.Resource.Group != "apps" || req.Resource.Resource != "deployments" {
		return admission.Allowed("not a deployments/scale update")
	}
	if h.opts.isController(req.UserInfo) {
		return admission.Allowed("controller")
	}
	if h.deployments == nil || req.Name == "" || len(req.Object.Raw) == 0 {
		return admission.Allowed("")
	}
	var scale autoscalingv1.Scale
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &scale); err != nil {
		return admission.Allowed("scale object not decodable")
	}
	want := scale.Spec.Replicas
	if want == 0 {
		return admission.Allowed("")
	}
	if len(req.OldObject.Raw) > 0 {
		var old autoscalingv1.Scale
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.OldObject.Raw, &old); err == nil && old.Spec.Replicas != 0 {
			return admission.Allowed("target not idle")
		}
	}
	dep := &metav1.PartialObjectMetadata{TypeMeta: deploymentTypeMeta}
	if err := h.deployments.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: req.Name}, dep); err != nil {
		return admission.Allowed("") // not found or cache unavailable: never block on it
	}
	canary := dep.Labels[meta.LabelCanary]
	if canary == "" {
		return admission.Allowed("not managed by Herald")
	}
	idleRev, idle := dep.Annotations[meta.AnnotationIdle]
	if !idle {
		return admission.Allowed("target not idle")
	}
	if rev, ok := dep.Annotations[meta.AnnotationRevision]; ok && rev != idleRev {
		return admission.Allowed("target has a new revision")
	}
	return admission.Denied(fmt.Sprintf(
		"deployment %s/%s is managed by Herald (canary %s) and idle at revision %s; "+
			"scale the primary instead: kubectl scale deployment/%s-primary --replicas %d -n %s",
		req.Namespace, req.Name, canary, idleRev, req.Name, want, req.Namespace))
}

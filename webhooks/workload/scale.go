package workload

import (
	"context"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/herald-rollouts/herald/internal/contract"
)

// ScaleHandler is the VALIDATING admission handler for the deployments/scale and
// statefulsets/scale subresources (autoscaling/v1 Scale, UPDATE). The Scale object carries no labels or annotations, so the
// transparent-replicas rule cannot be applied to it; instead a request that would start pods on
// an idle managed target is refused with a message that says how to scale the primary.
// Everything else is allowed. The webhook configuration cannot use an objectSelector for a
// subresource, so every deployments/scale call reaches it: the handler does one cache lookup.
type ScaleHandler struct {
	workloads client.Reader
	opts      Options
}

var _ admission.Handler = (*ScaleHandler)(nil)

// NewScaleHandler returns the scale handler. workloads must serve metav1.PartialObjectMetadata
// for apps/v1 Deployments and StatefulSets (a metadata informer cache; labels and annotations are
// all it reads).
func NewScaleHandler(workloads client.Reader, opts Options) *ScaleHandler {
	return &ScaleHandler{workloads: workloads, opts: opts}
}

// scaledKinds are the kinds whose scale subresource the handler judges, by resource.
var scaledKinds = map[string]string{"deployments": "Deployment", "statefulsets": "StatefulSet"}

// Handle implements admission.Handler.
func (h *ScaleHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	kind, scaled := scaledKinds[req.Resource.Resource]
	if req.Operation != admissionv1.Update || req.SubResource != "scale" || req.Resource.Group != "apps" || !scaled {
		return admission.Allowed("not a deployments/scale or statefulsets/scale update")
	}
	if h.opts.isController(req.UserInfo) {
		return admission.Allowed("controller")
	}
	if h.workloads == nil || req.Name == "" || len(req.Object.Raw) == 0 {
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
	obj := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: kind}}
	if err := h.workloads.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: req.Name}, obj); err != nil {
		return admission.Allowed("") // not found or cache unavailable: never block on it
	}
	canary := obj.Labels[contract.LabelCanary]
	if canary == "" {
		return admission.Allowed("not managed by Herald")
	}
	idleRev, idle := obj.Annotations[contract.AnnotationIdle]
	if !idle {
		return admission.Allowed("target not idle")
	}
	if rev, ok := obj.Annotations[contract.AnnotationRevision]; ok && rev != idleRev {
		return admission.Allowed("target has a new revision")
	}
	resource := strings.TrimSuffix(req.Resource.Resource, "s")
	return admission.Denied(fmt.Sprintf(
		"%s %s/%s is managed by Herald (canary %s) and idle at revision %s; "+
			"scale the primary instead: kubectl scale %s/%s --replicas %d -n %s",
		resource, req.Namespace, req.Name, canary, idleRev, resource, contract.PrimaryName(req.Name), want, req.Namespace))
}

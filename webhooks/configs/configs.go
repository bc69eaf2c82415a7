// Package configs is Herald's mutating admission webhook for tracked ConfigMaps and Secrets
// (core/v1, CREATE and UPDATE; DELETE is allowed through).
//
// For a config labelled contract.LabelTracked it writes contract.AnnotationChecksum, the checksum of
// the new content (contract.ConfigChecksum over data and binaryData for a ConfigMap,
// contract.SecretChecksum over data for a Secret), so that the controller and the workload
// webhook see a config's revision from a metadata-only cache, without reading data. A config
// that opts out with flagger.app/config-tracking: disabled is allowed unchanged, except that a
// stale checksum annotation is removed.
//
// Secret values never appear in responses, logs or errors: the only output is the JSON patch of
// the object's own metadata (its operations only add, replace or remove
// metadata.annotations["herald.dev/checksum"], or add metadata.annotations when the object has
// none), and response messages never include decoder errors. The handler has no side effects; dry-run requests get the same patch.
package configs

import (
	"context"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/webhooks/internal/mutate"
)

// Handler is the mutating admission handler for tracked ConfigMaps and Secrets.
type Handler struct{}

var _ admission.Handler = (*Handler)(nil)

// NewHandler returns the config handler. It reads nothing but the request.
func NewHandler() *Handler { return &Handler{} }

// Handle implements admission.Handler.
func (h *Handler) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation == admissionv1.Delete {
		return admission.Allowed("delete")
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("operation not handled")
	}
	if req.Kind.Group != "" || req.Kind.Version != "v1" {
		return admission.Allowed("kind not handled")
	}
	raw := req.Object.Raw
	if len(raw) == 0 {
		return admission.Allowed("no object")
	}

	var obj client.Object
	switch req.Kind.Kind {
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "Secret":
		obj = &corev1.Secret{}
	default:
		return admission.Allowed("kind not handled")
	}
	// The decoder's error could quote a fragment of a Secret: it is never reported.
	if !mutate.DecodeStrict(raw, obj) {
		return admission.Allowed("object not decodable, left unchanged")
	}
	annotations := obj.GetAnnotations()
	if obj.GetLabels()[contract.LabelTracked] != contract.TrackedValue {
		return admission.Allowed("not tracked by Herald")
	}
	// The controller's rule: an opted-out config (or a Secret of an untracked type) carries
	// no checksum, and a stale one is removed.
	sum, tracked := contract.TrackedChecksum(obj)
	if tracked && annotations[contract.AnnotationChecksum] == sum {
		return admission.Allowed("checksum " + sum)
	}
	if _, stale := annotations[contract.AnnotationChecksum]; !tracked && !stale {
		return admission.Allowed("config tracking disabled")
	}

	// The tracked label guarantees a metadata object for the patch to edit.
	patch := mutate.New(annotations)
	if !tracked {
		patch.RemoveAnnotation(contract.AnnotationChecksum)
		return patch.Response("config tracking disabled: stale checksum removed")
	}
	patch.SetAnnotation(contract.AnnotationChecksum, sum)
	return patch.Response("checksum " + sum)
}

// Package configs is Herald's mutating admission webhook for tracked ConfigMaps and Secrets
// (core/v1, CREATE and UPDATE; DELETE is allowed through).
//
// For a config labelled meta.LabelTracked it writes meta.AnnotationChecksum, the checksum of
// the new content (revision.ConfigChecksum over data and binaryData for a ConfigMap,
// revision.SecretChecksum over data for a Secret), so that the controller and the workload
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
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/herald-rollouts/herald/controllers/revision"
	"github.com/herald-rollouts/herald/webhooks/internal/mutate"
	"github.com/herald-rollouts/herald/webhooks/meta"
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

	var (
		labels, annotations map[string]string
		checksum            func() string
	)
	switch req.Kind.Kind {
	case "ConfigMap":
		var cm corev1.ConfigMap
		if !mutate.DecodeStrict(raw, &cm) {
			return admission.Allowed("object not decodable, left unchanged")
		}
		labels, annotations = cm.Labels, cm.Annotations
		checksum = func() string { return revision.ConfigChecksum(cm.Data, cm.BinaryData) }
	case "Secret":
		var s corev1.Secret
		// The decoder's error could quote a fragment of the object: it is never reported.
		if !mutate.DecodeStrict(raw, &s) {
			return admission.Allowed("object not decodable, left unchanged")
		}
		labels, annotations = s.Labels, s.Annotations
		checksum = func() string { return revision.SecretChecksum(secretData(&s)) }
	default:
		return admission.Allowed("kind not handled")
	}
	if labels[meta.LabelTracked] != meta.TrackedValue {
		return admission.Allowed("not tracked by Herald")
	}

	disabled := meta.TrackingDisabled(annotations)
	var sum string
	if disabled {
		if _, stale := annotations[meta.AnnotationChecksum]; !stale {
			return admission.Allowed("config tracking disabled")
		}
	} else {
		sum = checksum()
		if annotations[meta.AnnotationChecksum] == sum {
			// Unchanged content: no need for the generic decode below.
			return admission.Allowed("checksum " + sum)
		}
	}

	// The tracked label guarantees a metadata object for the patch to edit.
	patch := mutate.New(annotations)
	if disabled {
		patch.RemoveAnnotation(meta.AnnotationChecksum)
		return patch.Response("config tracking disabled: stale checksum removed")
	}
	patch.SetAnnotation(meta.AnnotationChecksum, sum)
	return patch.Response("checksum " + sum)
}

// secretData is the Secret's data as the API server stores it: stringData (write-only, normally
// already merged by the API server before admission) overrides data.
func secretData(s *corev1.Secret) map[string][]byte {
	if len(s.StringData) == 0 {
		return s.Data
	}
	data := make(map[string][]byte, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		data[k] = v
	}
	for k, v := range s.StringData {
		data[k] = []byte(v)
	}
	return data
}

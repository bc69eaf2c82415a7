// Package workload is Herald's mutating admission webhook for target Deployments, DaemonSets and
// StatefulSets (apps/v1, CREATE and UPDATE), and the validating webhook for their scale
// subresource.
//
// For a workload labelled contract.LabelCanary the mutating handler
//
//   - writes the revision (contract.Revision over the pod template and the checksums of the configs it
//     references, read from a metadata-only cache) to metadata.annotations["herald.dev/revision"];
//   - keeps an idle Deployment or StatefulSet at zero replicas ("transparent replicas"): when the old object is
//     idle (contract.AnnotationIdle, spec.replicas 0), the pod template is unchanged (the new
//     revision equals the idle one) and somebody other than the controller asks for n > 0
//     replicas, it sets spec.replicas back to 0 and records n in contract.AnnotationDesiredReplicas;
//     the controller applies n to the primary.
//
// The handler has no side effects and its output depends only on the request and the cache:
// the same request gives the same patch. Dry-run requests (dryRun: true) therefore get exactly
// the patch a real request would get, so a server-side dry-run (Flux drift detection,
// kubectl diff) of a re-applied manifest equals the live object and shows no drift. The webhook
// configuration can declare sideEffects: None.
//
// The handlers never deny a workload write and never error: anything they do not understand is
// allowed unchanged (the controller computes the same revision itself, the webhook is only the
// fast path). Use failurePolicy: Ignore and a short timeout.
package workload

import (
	"context"
	"slices"
	"strconv"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/webhooks/internal/mutate"
)

// Options configures the workload handlers.
type Options struct {
	// ControllerUsername is the user name of Herald's controller, e.g.
	// "system:serviceaccount:herald-system:herald". Its writes to an idle target are applied
	// as sent. Empty matches nobody.
	ControllerUsername string
	// ControllerGroups: a user in any of these groups counts as the controller too.
	ControllerGroups []string
	// DisableConfigTracking leaves referenced ConfigMaps and Secrets out of the revision
	// (the controller's --enable-config-tracking=false); both sides must agree.
	DisableConfigTracking bool
}

// isController reports whether the requesting user is Herald's controller.
func (o *Options) isController(u authenticationv1.UserInfo) bool {
	if o.ControllerUsername != "" && u.Username == o.ControllerUsername {
		return true
	}
	for _, g := range o.ControllerGroups {
		if g != "" && slices.Contains(u.Groups, g) {
			return true
		}
	}
	return false
}

// Handler is the mutating admission handler for target Deployments and DaemonSets.
type Handler struct {
	configs client.Reader
	opts    Options
}

var _ admission.Handler = (*Handler)(nil)

// NewHandler returns the workload handler. configs must serve metav1.PartialObjectMetadata
// ConfigMaps and Secrets from an informer cache (see contract.ConfigChecksums); it may be nil when
// opts.DisableConfigTracking is set.
func NewHandler(configs client.Reader, opts Options) *Handler {
	return &Handler{configs: configs, opts: opts}
}

// workloadObject is the part of a Deployment, DaemonSet or StatefulSet the handler reads. The
// rest of the object (status, managedFields, the rest of the spec) is skipped by the decoder
// without being built.
type workloadObject struct {
	Metadata struct {
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		// Replicas is nil for DaemonSets, which have none.
		Replicas *int32                 `json:"replicas"`
		Template corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
}

// workloadKinds are the apps/v1 kinds the handler handles; of them, DaemonSets have no replicas.
var workloadKinds = map[string]bool{"Deployment": true, "DaemonSet": false, "StatefulSet": true}

// decodeWorkload decodes the new object like the API server does (case-sensitive field names)
// and refuses duplicate fields, on which a patch would be ambiguous.
func decodeWorkload(kind string, raw []byte) (*workloadObject, bool) {
	hasReplicas, ok := workloadKinds[kind]
	if !ok || len(raw) == 0 {
		return nil, false
	}
	obj := &workloadObject{}
	if !mutate.DecodeStrict(raw, obj) {
		return nil, false
	}
	if !hasReplicas {
		obj.Spec.Replicas = nil
	}
	return obj, true
}

// idleState is the part of the old object that tells whether it is idle.
type idleState struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int32 `json:"replicas"`
	} `json:"spec"`
}

// decodeIdleState reads the old object's annotations and spec.replicas. Duplicate fields are
// not refused here: the API server wrote the old object.
func decodeIdleState(raw []byte) (*idleState, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	s := &idleState{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, s); err != nil {
		return nil, false
	}
	return s, true
}

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("operation not handled")
	}
	kind := req.Kind.Kind
	if _, ok := workloadKinds[kind]; !ok || req.Kind.Group != "apps" || req.Kind.Version != "v1" {
		return admission.Allowed("kind not handled")
	}
	obj, ok := decodeWorkload(kind, req.Object.Raw)
	if !ok {
		return admission.Allowed("object not decodable, left unchanged")
	}
	canary := obj.Metadata.Labels[contract.LabelCanary]
	if canary == "" {
		return admission.Allowed("not managed by Herald")
	}
	// The canary label guarantees a metadata object for the patch to edit.
	patch := mutate.New(obj.Metadata.Annotations)

	namespace := req.Namespace
	if namespace == "" {
		namespace = obj.Metadata.Namespace
	}
	var (
		configs map[string]string
		err     error
	)
	if !h.opts.DisableConfigTracking {
		configs, err = contract.ConfigChecksums(ctx, h.configs, namespace, &obj.Spec.Template.Spec)
		if err != nil {
			return admission.Allowed("config cache unavailable, revision left to the controller")
		}
	}
	rev, err := contract.Revision(&obj.Spec.Template, configs)
	if err != nil {
		return admission.Allowed("revision not computable, left to the controller")
	}
	patch.SetAnnotation(contract.AnnotationRevision, rev)

	msg := "revision " + rev
	if obj.Spec.Replicas != nil && req.Operation == admissionv1.Update {
		if held := h.holdReplicas(req, obj, rev, patch); held != "" {
			msg += "; " + held
		}
	}
	return patch.Response(msg)
}

// holdReplicas applies the transparent-replicas rule to a Deployment UPDATE and returns a
// description of what it did ("" when nothing).
func (h *Handler) holdReplicas(req admission.Request, obj *workloadObject, rev string, patch *mutate.Patch) string {
	// Cheapest checks first: most updates of a managed target are not a replicas wish on an
	// idle one.
	if obj.Spec.Replicas == nil || *obj.Spec.Replicas == 0 || h.opts.isController(req.UserInfo) {
		return ""
	}
	old, ok := decodeIdleState(req.OldObject.Raw)
	if !ok {
		return ""
	}
	idleRev, idle := old.Metadata.Annotations[contract.AnnotationIdle]
	if !idle || old.Spec.Replicas == nil || *old.Spec.Replicas != 0 {
		return "" // not idle
	}
	if rev != idleRev {
		return "" // a new pod template: the user's replicas start the canary
	}
	// obj.Spec.Replicas is non-nil: spec is an object with a replicas member.
	current := int64(*obj.Spec.Replicas)
	want := strconv.FormatInt(current, 10)
	patch.SetSpecInt("replicas", 0, &current)
	patch.SetAnnotation(contract.AnnotationDesiredReplicas, want)
	// Keep the idle mark even when the request dropped it (kubectl replace, or a server-side
	// apply whose manager had come to own it).
	patch.SetAnnotation(contract.AnnotationIdle, idleRev)
	return "idle at revision " + idleRev + ": replicas " + want + " recorded in " +
		contract.AnnotationDesiredReplicas + ", target kept at 0"
}

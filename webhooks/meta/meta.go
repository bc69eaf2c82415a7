// Package meta holds the labels and annotations that connect Herald's controller and its
// admission webhooks, and the config-checksum lookup both of them use to compute a revision.
//
// Contract:
//
//   - LabelCanary ("herald.dev/canary: <canary name>") is set by the controller on every target
//     Deployment/DaemonSet it manages. The workload webhook's objectSelector matches it, and the
//     handlers check it again: an object without it is allowed unchanged.
//   - LabelTracked ("herald.dev/tracked: \"true\"") is set by the controller on the ConfigMaps and
//     Secrets a target references. The config webhook's objectSelector matches it.
//   - AnnotationChecksum ("herald.dev/checksum") is written by the config webhook on a tracked
//     config: revision.ConfigChecksum(data, binaryData) for a ConfigMap,
//     revision.SecretChecksum(data) for a Secret.
//   - AnnotationRevision ("herald.dev/revision", = revision.Annotation) is written by the workload
//     webhook on the workload's metadata (never on the pod template, which would roll pods).
//   - AnnotationIdle ("herald.dev/idle: <revision>") is set by the controller when it scaled the
//     target to zero after initialisation or promotion: the target is idle at that revision.
//   - AnnotationDesiredReplicas ("herald.dev/desired-replicas: <n>") is written by the workload
//     webhook when somebody other than the controller asks an idle target for n replicas; the
//     controller applies n to the primary.
//   - AnnotationConfigTracking ("flagger.app/config-tracking"), Flagger's opt-out: a config whose
//     value starts with "disable" is not tracked.
package meta

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-rollouts/herald/controllers/revision"
)

const (
	// LabelCanary marks a target workload managed by Herald; its value is the Canary's name.
	LabelCanary = revision.Prefix + "canary"
	// LabelTracked marks a ConfigMap or Secret whose checksum Herald tracks (value "true").
	LabelTracked = revision.Prefix + "tracked"
	// TrackedValue is the value of LabelTracked.
	TrackedValue = "true"

	// AnnotationChecksum is the content checksum of a tracked ConfigMap or Secret.
	AnnotationChecksum = revision.Prefix + "checksum"
	// AnnotationRevision is the revision of a workload, on the workload's own metadata.
	AnnotationRevision = revision.Annotation
	// AnnotationIdle marks a target the controller scaled to zero; its value is the revision
	// at which the target went idle.
	AnnotationIdle = revision.Prefix + "idle"
	// AnnotationDesiredReplicas records the replicas a user asked for while the target is idle.
	AnnotationDesiredReplicas = revision.Prefix + "desired-replicas"

	// AnnotationConfigTracking is Flagger's per-config opt-out annotation.
	AnnotationConfigTracking = "flagger.app/config-tracking"

	// MissingChecksum is the value a referenced config contributes to a revision when it is not
	// in the cache or carries no checksum annotation yet.
	MissingChecksum = "missing"
)

// TrackingDisabled reports whether a config's annotations opt it out of tracking
// (flagger.app/config-tracking: disabled, or any value starting with "disable").
func TrackingDisabled(annotations map[string]string) bool {
	return strings.HasPrefix(annotations[AnnotationConfigTracking], "disable")
}

// ConfigMapGVK and SecretGVK are set on the PartialObjectMetadata objects ConfigChecksums reads.
var (
	configMapTypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
	secretTypeMeta    = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
)

// ConfigChecksums returns the config map to pass to revision.Of for a pod spec in namespace:
// for every ConfigMap and Secret the spec references (revision.Refs), the AnnotationChecksum
// of that config, keyed by revision.ConfigKey.
//
//   - a config that opts out (TrackingDisabled) is left out;
//   - an optional reference whose config does not exist is left out;
//   - any other config that does not exist, or has no checksum annotation, contributes
//     MissingChecksum.
//
// It reads metadata only: reader must serve metav1.PartialObjectMetadata (a metadata informer
// cache), so Secret data is never loaded. It returns nil when nothing is referenced. Errors
// other than NotFound are returned, because a revision computed from a cache that cannot answer
// would be wrong.
func ConfigChecksums(ctx context.Context, reader client.Reader, namespace string, spec *corev1.PodSpec) (map[string]string, error) {
	refs := revision.Refs(spec)
	if len(refs) == 0 {
		return nil, nil
	}
	if reader == nil {
		return nil, errors.New("no config cache")
	}
	configs := make(map[string]string, len(refs))
	for _, ref := range refs {
		obj := &metav1.PartialObjectMetadata{}
		switch ref.Kind {
		case revision.ConfigMap:
			obj.TypeMeta = configMapTypeMeta
		case revision.Secret:
			obj.TypeMeta = secretTypeMeta
		default:
			continue
		}
		err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, obj)
		switch {
		case apierrors.IsNotFound(err):
			if !ref.Optional {
				configs[ref.Key()] = MissingChecksum
			}
		case err != nil:
			// The name is not secret; the error of a metadata cache carries no data.
			return nil, fmt.Errorf("reading %s: %w", ref.Key(), err)
		case TrackingDisabled(obj.Annotations):
			// opted out
		default:
			sum := obj.Annotations[AnnotationChecksum]
			if sum == "" {
				sum = MissingChecksum
			}
			configs[ref.Key()] = sum
		}
	}
	if len(configs) == 0 {
		return nil, nil
	}
	return configs, nil
}

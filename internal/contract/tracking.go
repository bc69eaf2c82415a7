package contract

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The one rule of which configs count towards a revision. A ConfigMap or Secret that a pod
// template references (Refs) is tracked unless
//
//   - it opts out with Flagger's annotation (FlaggerConfigTracking: a value starting with
//     "disable"), or
//   - it is a Secret of a type that is not application configuration (image pull secrets,
//     service-account tokens, bootstrap tokens, ...: see TrackableSecretType), or
//   - it does not exist and every reference to it is optional.
//
// The controller applies the rule to the objects themselves (TrackedChecksum) and labels the
// tracked ones with LabelTracked; the webhooks see only labelled configs, through a
// metadata-only cache (ConfigChecksums), so a config the controller does not track is never
// labelled and never counts on either side.

// TrackingDisabled reports whether a config's annotations opt it out of tracking.
func TrackingDisabled(annotations map[string]string) bool {
	return strings.HasPrefix(annotations[FlaggerConfigTracking], "disable")
}

// TrackableSecretType reports whether Secrets of type t hold application configuration:
// Opaque (or no type), basic-auth, ssh-auth and TLS, as in Flagger.
func TrackableSecretType(t corev1.SecretType) bool {
	switch t {
	case "", corev1.SecretTypeOpaque, corev1.SecretTypeBasicAuth, corev1.SecretTypeSSHAuth, corev1.SecretTypeTLS:
		return true
	}
	return false
}

// TrackedChecksum applies the rule to a ConfigMap or Secret read in full: its checksum, and
// whether it is tracked at all.
func TrackedChecksum(obj client.Object) (sum string, tracked bool) {
	if TrackingDisabled(obj.GetAnnotations()) {
		return "", false
	}
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		return ConfigChecksum(o.Data, o.BinaryData), true
	case *corev1.Secret:
		if !TrackableSecretType(o.Type) {
			return "", false
		}
		return SecretChecksum(SecretData(o)), true
	}
	return "", false
}

// SecretData is a Secret's data as the API server stores it: stringData (write-only, merged
// by the API server before storage, but present in an admission request) overrides data.
func SecretData(s *corev1.Secret) map[string][]byte {
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

// MissingChecksum is what a tracked config whose checksum annotation is missing contributes
// to a revision (the controller writes label and checksum together, so only a hand edit made
// while the config webhook was down leads here; the controller repairs it).
const MissingChecksum = "missing"

var (
	configMapTypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
	secretTypeMeta    = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
)

// ConfigChecksums returns the configs argument of Revision for a pod spec in namespace, as the
// webhooks see it: for every referenced config that reader holds (reader serves
// metav1.PartialObjectMetadata of tracked configs only, so Secret data is never loaded) and
// that does not opt out, its AnnotationChecksum, keyed by ConfigKey. A config reader does not
// hold is one the controller does not track (or has not tracked yet), and is left out, as the
// controller leaves it out. It returns nil when nothing is tracked. Errors other than NotFound
// are returned: a revision computed from a cache that cannot answer would be wrong.
func ConfigChecksums(ctx context.Context, reader client.Reader, namespace string, spec *corev1.PodSpec) (map[string]string, error) {
	refs := Refs(spec)
	if len(refs) == 0 {
		return nil, nil
	}
	if reader == nil {
		return nil, fmt.Errorf("no config cache")
	}
	var configs map[string]string
	for _, ref := range refs {
		obj := &metav1.PartialObjectMetadata{TypeMeta: configMapTypeMeta}
		if ref.Kind == Secret {
			obj.TypeMeta = secretTypeMeta
		}
		err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, obj)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			// The name is not secret; the error of a metadata cache carries no data.
			return nil, fmt.Errorf("reading %s: %w", ref.Key(), err)
		case obj.Labels[LabelTracked] != TrackedValue, TrackingDisabled(obj.Annotations):
			continue
		}
		sum := obj.Annotations[AnnotationChecksum]
		if sum == "" {
			sum = MissingChecksum
		}
		if configs == nil {
			configs = make(map[string]string, len(refs))
		}
		configs[ref.Key()] = sum
	}
	return configs, nil
}

package canary

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-rollouts/herald/controllers/revision"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/webhooks/meta"
)

// target is the Canary's workload, a Deployment or a DaemonSet, seen through what the
// controller needs of it.
type target struct {
	obj      client.Object
	kind     string
	template *corev1.PodTemplateSpec
	selector *metav1.LabelSelector
	// replicas is nil for DaemonSets.
	replicas *int32
	// label and value identify its pods (one of the selector labels).
	label, value string
}

func (p *pass) getTarget(ctx context.Context) (*target, error) {
	ref := p.c.Spec.TargetRef
	key := types.NamespacedName{Namespace: p.c.Namespace, Name: ref.Name}
	var t target
	switch ref.Kind {
	case "Deployment", "":
		var d appsv1.Deployment
		if err := p.r.Client.Get(ctx, key, &d); err != nil {
			return nil, err
		}
		t = target{obj: &d, kind: "Deployment", template: &d.Spec.Template, selector: d.Spec.Selector, replicas: d.Spec.Replicas}
	case "DaemonSet":
		var d appsv1.DaemonSet
		if err := p.r.Client.Get(ctx, key, &d); err != nil {
			return nil, err
		}
		t = target{obj: &d, kind: "DaemonSet", template: &d.Spec.Template, selector: d.Spec.Selector}
	default:
		return nil, terminalf("targetRef kind %q is not supported: use Deployment or DaemonSet", ref.Kind)
	}
	label, value, err := workloads.SelectorLabel(t.selector, t.template.Labels, p.r.Options.SelectorLabels)
	if err != nil {
		return nil, terminalf("target %s %s/%s: %v", t.kind, p.c.Namespace, ref.Name, err)
	}
	t.label, t.value = label, value
	return &t, nil
}

// mergePatch applies a JSON merge patch to obj as Herald; the workload webhook lets Herald's
// own writes through to an idle target.
func (p *pass) mergePatch(ctx context.Context, obj client.Object, patch string) error {
	if err := p.r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return fmt.Errorf("patching %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}

// ensureTargetLabel puts Herald's label on the target, so the workload webhook sees it.
func (p *pass) ensureTargetLabel(ctx context.Context, t *target) error {
	if t.obj.GetLabels()[meta.LabelCanary] == p.c.Name {
		return nil
	}
	return p.mergePatch(ctx, t.obj, fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, meta.LabelCanary, p.c.Name))
}

// trackConfigs finds the ConfigMaps and Secrets the target references, labels them as
// tracked, keeps their checksum annotation current (the config webhook does so on every
// change; this covers changes made while it was down) and returns their checksums.
func (p *pass) trackConfigs(ctx context.Context, t *target) (map[string]string, []revision.Ref, error) {
	if !p.r.Options.ConfigTracking {
		return nil, nil, nil
	}
	sums := map[string]string{}
	var tracked []revision.Ref
	for _, ref := range revision.Refs(&t.template.Spec) {
		key := types.NamespacedName{Namespace: p.c.Namespace, Name: ref.Name}
		var obj client.Object
		var sum string
		switch ref.Kind {
		case revision.ConfigMap:
			var cm corev1.ConfigMap
			if err := p.r.APIReader.Get(ctx, key, &cm); err != nil {
				if apierrors.IsNotFound(err) && ref.Optional {
					continue
				}
				return nil, nil, fmt.Errorf("reading configmap %s: %w", ref.Name, err)
			}
			obj, sum = &cm, revision.ConfigChecksum(cm.Data, cm.BinaryData)
		case revision.Secret:
			var s corev1.Secret
			if err := p.r.APIReader.Get(ctx, key, &s); err != nil {
				if apierrors.IsNotFound(err) && ref.Optional {
					continue
				}
				return nil, nil, fmt.Errorf("reading secret %s: %w", ref.Name, err)
			}
			if !trackableSecret(s.Type) {
				continue
			}
			obj, sum = &s, revision.SecretChecksum(s.Data)
		}
		if meta.TrackingDisabled(obj.GetAnnotations()) {
			continue
		}
		if obj.GetLabels()[meta.LabelTracked] != meta.TrackedValue || obj.GetAnnotations()[meta.AnnotationChecksum] != sum {
			patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q},"annotations":{%q:%q}}}`, meta.LabelTracked, meta.TrackedValue, meta.AnnotationChecksum, sum)
			if err := p.mergePatch(ctx, obj, patch); err != nil {
				return nil, nil, err
			}
		}
		sums[ref.Key()] = sum
		tracked = append(tracked, ref)
	}
	if len(sums) == 0 {
		return nil, nil, nil
	}
	return sums, tracked, nil
}

// trackableSecret: pull secrets and service-account tokens are not application config.
func trackableSecret(t corev1.SecretType) bool {
	switch t {
	case "", corev1.SecretTypeOpaque, corev1.SecretTypeBasicAuth, corev1.SecretTypeSSHAuth, corev1.SecretTypeTLS:
		return true
	}
	return false
}

// desiredReplicas is what the primary should run when no autoscaler sizes it: the target's own
// replicas when it runs, else the wish a user expressed while it was idle, else the primary's.
func desiredReplicas(t *target, primary *appsv1.Deployment) *int32 {
	if t.replicas != nil && *t.replicas > 0 {
		return t.replicas
	}
	if v, ok := t.obj.GetAnnotations()[meta.AnnotationDesiredReplicas]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			r := int32(n)
			return &r
		}
	}
	if primary != nil && primary.Spec.Replicas != nil {
		return primary.Spec.Replicas
	}
	one := int32(1)
	return &one
}

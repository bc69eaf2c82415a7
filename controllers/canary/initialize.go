package canary

import (
	"context"
	"fmt"
	"maps"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/herald-rollouts/herald/controllers/revision"
	"github.com/herald-rollouts/herald/controllers/workloads"
)

// apply creates obj or, when it exists, updates it through mutate; owned objects get the Canary
// as controller owner so they are garbage-collected with it.
func (p *pass) apply(ctx context.Context, obj client.Object, mutate func() error) error {
	res, err := controllerutil.CreateOrUpdate(ctx, p.r.Client, obj, func() error {
		if err := mutate(); err != nil {
			return err
		}
		return controllerutil.SetControllerReference(p.c, obj, p.r.Client.Scheme())
	})
	if err != nil {
		return fmt.Errorf("reconciling %T %s: %w", obj, obj.GetName(), err)
	}
	if res != controllerutil.OperationResultNone {
		p.log.V(1).Info("Reconciled owned object", "kind", fmt.Sprintf("%T", obj), "name", obj.GetName(), "result", res)
	}
	return nil
}

// syncPrimaryConfigs writes the -primary copies of the tracked configs. They are written with
// server-side apply, which needs no read: the manager's cache holds no application Secrets (and
// should not hold every ConfigMap either).
func (p *pass) syncPrimaryConfigs(ctx context.Context, refs []revision.Ref) error {
	for _, ref := range refs {
		key := types.NamespacedName{Namespace: p.c.Namespace, Name: ref.Name}
		var desired client.Object
		switch ref.Kind {
		case revision.ConfigMap:
			var cm corev1.ConfigMap
			if err := p.r.APIReader.Get(ctx, key, &cm); err != nil {
				return fmt.Errorf("reading configmap %s: %w", ref.Name, err)
			}
			desired = workloads.PrimaryConfigMap(&cm)
		case revision.Secret:
			var s corev1.Secret
			if err := p.r.APIReader.Get(ctx, key, &s); err != nil {
				return fmt.Errorf("reading secret %s: %w", ref.Name, err)
			}
			desired = workloads.PrimarySecret(&s)
		default:
			continue
		}
		if err := controllerutil.SetControllerReference(p.c, desired, p.r.Client.Scheme()); err != nil {
			return err
		}
		desired.SetResourceVersion("")
		desired.SetManagedFields(nil)
		//nolint:staticcheck // typed server-side apply of a built-in kind
		if err := p.r.Client.Patch(ctx, desired, client.Apply, client.FieldOwner("herald"), client.ForceOwnership); err != nil {
			return fmt.Errorf("writing %s: %w", desired.GetName(), err)
		}
	}
	return nil
}

// getPrimary reads the primary Deployment; nil when it does not exist yet.
func (p *pass) getPrimary(ctx context.Context, t *target) (*appsv1.Deployment, error) {
	return getOptional(ctx, p, workloads.PrimaryName(t.obj.GetName()), &appsv1.Deployment{})
}

func (p *pass) getPrimaryDaemonSet(ctx context.Context, t *target) (*appsv1.DaemonSet, error) {
	return getOptional(ctx, p, workloads.PrimaryName(t.obj.GetName()), &appsv1.DaemonSet{})
}

// getOptional reads name in the Canary's namespace into obj; nil when it does not exist.
func getOptional[T client.Object](ctx context.Context, p *pass, name string, obj T) (T, error) {
	var zero T
	err := p.r.Client.Get(ctx, types.NamespacedName{Namespace: p.c.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return zero, nil
	}
	if err != nil {
		return zero, fmt.Errorf("reading %s: %w", name, err)
	}
	return obj, nil
}

// syncPrimary makes the primary run the target's current template (at initialisation and at
// promotion). Replicas: the autoscaler's when there is one, else desiredReplicas.
func (p *pass) syncPrimary(ctx context.Context, t *target, refs []revision.Ref) error {
	renames := workloads.ConfigRenames(refs)
	switch src := t.obj.(type) {
	case *appsv1.Deployment:
		existing, err := p.getPrimary(ctx, t)
		if err != nil {
			return err
		}
		var replicas *int32
		if existing != nil && p.c.Spec.AutoscalerRef != nil {
			replicas = existing.Spec.Replicas // the primary HPA owns it
		} else {
			replicas = desiredReplicas(t, existing)
		}
		desired := workloads.PrimaryDeployment(src, existing, t.label, t.value, renames, replicas)
		markPromoted(&desired.Spec.Template, p.c.Status.LastAppliedSpec)
		actual := &appsv1.Deployment{}
		actual.Name, actual.Namespace = desired.Name, desired.Namespace
		return p.apply(ctx, actual, func() error {
			actual.Labels, actual.Annotations = desired.Labels, keepSystemAnnotations(actual.Annotations, desired.Annotations)
			selector := actual.Spec.Selector
			actual.Spec = desired.Spec
			if selector != nil { // immutable once created
				actual.Spec.Selector = selector
			}
			return nil
		})
	case *appsv1.DaemonSet:
		existing, err := p.getPrimaryDaemonSet(ctx, t)
		if err != nil {
			return err
		}
		desired := workloads.PrimaryDaemonSet(src, existing, t.label, t.value, renames)
		markPromoted(&desired.Spec.Template, p.c.Status.LastAppliedSpec)
		actual := &appsv1.DaemonSet{}
		actual.Name, actual.Namespace = desired.Name, desired.Namespace
		return p.apply(ctx, actual, func() error {
			actual.Labels, actual.Annotations = desired.Labels, keepSystemAnnotations(actual.Annotations, desired.Annotations)
			selector := actual.Spec.Selector
			actual.Spec = desired.Spec
			if selector != nil {
				actual.Spec.Selector = selector
			}
			return nil
		})
	}
	return fmt.Errorf("unsupported target %T", t.obj)
}

// promotedAnnotation on the primary's pod template names the revision it runs. A change of
// only a ConfigMap or Secret leaves the template otherwise equal, so without it the primary
// would not roll and its pods would keep the old configuration; it also lets promoting()
// tell a primary that has not yet seen the promotion from one that finished it.
const promotedAnnotation = "herald.dev/promoted-revision"

func markPromoted(tmpl *corev1.PodTemplateSpec, rev string) {
	if rev == "" {
		return
	}
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	tmpl.Annotations[promotedAnnotation] = rev
}

// keepSystemAnnotations returns desired plus the annotations Kubernetes' own controllers keep
// on a workload (deployment.kubernetes.io/revision, deprecated.daemonset.template.generation).
// Dropping them would make the Deployment controller write them back, and since annotation
// changes bump a Deployment's generation, the two would chase each other forever.
func keepSystemAnnotations(existing, desired map[string]string) map[string]string {
	out := maps.Clone(desired)
	for k, v := range existing {
		if strings.HasPrefix(k, "deployment.kubernetes.io/") || k == "deprecated.daemonset.template.generation" {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// syncPrimaryReplicas follows a user's replicas wish (herald.dev/desired-replicas or the
// target's replicas) on the primary outside promotions, when no autoscaler sizes it.
func (p *pass) syncPrimaryReplicas(ctx context.Context, t *target) error {
	if t.kind != "Deployment" || p.c.Spec.AutoscalerRef != nil {
		return nil
	}
	primary, err := p.getPrimary(ctx, t)
	if err != nil || primary == nil {
		return err
	}
	want := desiredReplicas(t, primary)
	if primary.Spec.Replicas != nil && *primary.Spec.Replicas == *want {
		return nil
	}
	return p.mergePatch(ctx, primary, fmt.Sprintf(`{"spec":{"replicas":%d}}`, *want))
}

// syncHPA copies the target's HorizontalPodAutoscaler for the primary.
func (p *pass) syncHPA(ctx context.Context, t *target) error {
	ref := p.c.Spec.AutoscalerRef
	if ref == nil || ref.Kind != "HorizontalPodAutoscaler" {
		return nil
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	if err := p.r.Client.Get(ctx, types.NamespacedName{Namespace: p.c.Namespace, Name: ref.Name}, &hpa); err != nil {
		if apierrors.IsNotFound(err) {
			return terminalf("autoscalerRef: HorizontalPodAutoscaler %s/%s not found", p.c.Namespace, ref.Name)
		}
		return fmt.Errorf("reading hpa: %w", err)
	}
	desired := workloads.PrimaryHPA(&hpa, workloads.PrimaryName(t.obj.GetName()), ref.PrimaryScalerReplicas)
	actual := &autoscalingv2.HorizontalPodAutoscaler{}
	actual.Name, actual.Namespace = desired.Name, desired.Namespace
	return p.apply(ctx, actual, func() error {
		actual.Labels, actual.Annotations, actual.Spec = desired.Labels, desired.Annotations, desired.Spec
		return nil
	})
}

// syncServices keeps the -primary and -canary Services (and, with apex, the apex Service) as
// the Canary describes them. Only the fields Herald sets are compared, so defaults the API
// server adds never cause an update. The apex is synced only once the primary is ready, so a
// user's existing Service is never pointed at pods that do not serve yet; a Service a user
// created is taken over but not owned, so deleting the Canary does not delete it.
func (p *pass) syncServices(ctx context.Context, t *target, withApex bool) error {
	apex, primary, canary := workloads.Services(p.c, t.label, t.value, t.template)
	services := []*corev1.Service{primary, canary}
	if withApex {
		services = append(services, apex)
	}
	for _, desired := range services {
		var actual corev1.Service
		err := p.r.Client.Get(ctx, client.ObjectKeyFromObject(desired), &actual)
		if err == nil && serviceUpToDate(&actual, desired) {
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading service %s: %w", desired.Name, err)
		}
		obj := &corev1.Service{}
		obj.Name, obj.Namespace = desired.Name, desired.Namespace
		if _, err := controllerutil.CreateOrUpdate(ctx, p.r.Client, obj, func() error {
			if obj.CreationTimestamp.IsZero() {
				if err := controllerutil.SetControllerReference(p.c, obj, p.r.Client.Scheme()); err != nil {
					return err
				}
			}
			if obj.Labels == nil {
				obj.Labels = map[string]string{}
			}
			if obj.Annotations == nil {
				obj.Annotations = map[string]string{}
			}
			maps.Copy(obj.Labels, desired.Labels)
			maps.Copy(obj.Annotations, desired.Annotations)
			obj.Spec.Selector = desired.Spec.Selector
			obj.Spec.Ports = mergePorts(obj.Spec.Ports, desired.Spec.Ports)
			if obj.Spec.Type == "" {
				obj.Spec.Type = desired.Spec.Type
			}
			if obj.CreationTimestamp.IsZero() {
				obj.Spec.ClusterIP = desired.Spec.ClusterIP
			}
			obj.Spec.TrafficDistribution = desired.Spec.TrafficDistribution
			return nil
		}); err != nil {
			return fmt.Errorf("reconciling service %s: %w", desired.Name, err)
		}
	}
	return nil
}

func serviceUpToDate(actual, desired *corev1.Service) bool {
	for k, v := range desired.Labels {
		if actual.Labels[k] != v {
			return false
		}
	}
	for k, v := range desired.Annotations {
		if actual.Annotations[k] != v {
			return false
		}
	}
	if !equality.Semantic.DeepEqual(actual.Spec.Selector, desired.Spec.Selector) {
		return false
	}
	return equality.Semantic.DeepEqual(mergePorts(actual.Spec.Ports, desired.Spec.Ports), actual.Spec.Ports)
}

// mergePorts returns the desired ports, keeping the nodePort the API server assigned.
func mergePorts(actual, desired []corev1.ServicePort) []corev1.ServicePort {
	out := make([]corev1.ServicePort, len(desired))
	for i, d := range desired {
		out[i] = d
		for _, a := range actual {
			if a.Name == d.Name && a.Port == d.Port {
				out[i].NodePort = a.NodePort
			}
		}
	}
	return out
}

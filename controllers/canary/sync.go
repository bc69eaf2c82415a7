package canary

import (
	"context"
	"fmt"
	"maps"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/herald-rollouts/herald/controllers/adopt"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
)

// Ownership. Deleting a Canary must never take serving pods away before the target serves
// again, even while Herald is stopped, so the primary workload is not owned by the Canary: it
// carries contract.LabelPrimaryOf, and Herald deletes it once the target serves again
// (releaser). What only the primary needs (its copies of the configs, its autoscaler, its
// -primary and -canary Services, its governing Service) is owned by the primary and goes with
// it. What Herald creates for the Canary alone (an apex Service it made, routes it made) is
// owned by the Canary. What a user made before is adopted, never owned (package adopt).

// apply creates obj or, when it exists, updates it through mutate, with owner as its controller
// owner (none when owner is nil). A controller reference to the Canary that an earlier Herald
// version set is dropped for the new owner.
func (p *pass) apply(ctx context.Context, obj client.Object, owner client.Object, mutate func() error) error {
	res, err := controllerutil.CreateOrUpdate(ctx, p.r.Client, obj, func() error {
		// The cache keeps at most a shortened list (cmd/herald's slimForCache); sent back, it
		// would replace every manager's ownership. Nil keeps the server's.
		obj.SetManagedFields(nil)
		if err := mutate(); err != nil {
			return err
		}
		return p.setOwner(obj, owner)
	})
	if err != nil {
		return fmt.Errorf("reconciling %s %s: %w", kindOf(obj), obj.GetName(), err)
	}
	if res != controllerutil.OperationResultNone {
		p.log.V(1).Info("Reconciled owned object", "kind", kindOf(obj), "name", obj.GetName(), "result", res)
	}
	return nil
}

// setOwner makes owner the controller owner of obj (none when owner is nil), dropping a
// reference to the Canary when the owner is another object.
func (p *pass) setOwner(obj, owner client.Object) error {
	if owner == nil || owner.GetUID() != p.c.UID {
		refs := obj.GetOwnerReferences()[:0]
		for _, ref := range obj.GetOwnerReferences() {
			if ref.UID != p.c.UID {
				refs = append(refs, ref)
			}
		}
		obj.SetOwnerReferences(refs)
	}
	if owner == nil {
		return nil
	}
	return controllerutil.SetControllerReference(owner, obj, p.r.Client.Scheme())
}

// primaryOwner is the owner of what only the primary needs: the primary once it exists, the
// Canary before (so nothing is left behind when a Canary goes before its primary was made).
func (p *pass) primaryOwner() client.Object {
	if p.primary != nil && p.primary.Object().GetUID() != "" {
		return p.primary.Object()
	}
	return p.c
}

// syncPrimaryConfigs writes the -primary copies of the tracked configs. They are written with
// server-side apply, which needs no read: the manager's cache holds no application Secrets (and
// should not hold every ConfigMap either). Before the primary exists they are written without
// an owner (its pods must find them when they start) and get it on the next write.
func (p *pass) syncPrimaryConfigs(ctx context.Context) error {
	for _, ref := range p.refs {
		key := types.NamespacedName{Namespace: p.c.Namespace, Name: ref.Name}
		var desired client.Object
		switch ref.Kind {
		case contract.ConfigMap:
			var cm corev1.ConfigMap
			if err := p.r.APIReader.Get(ctx, key, &cm); err != nil {
				return fmt.Errorf("reading configmap %s: %w", ref.Name, err)
			}
			desired = workloads.PrimaryConfigMap(&cm, p.r.Options.IncludeLabelPrefix)
		case contract.Secret:
			var s corev1.Secret
			if err := p.r.APIReader.Get(ctx, key, &s); err != nil {
				return fmt.Errorf("reading secret %s: %w", ref.Name, err)
			}
			desired = workloads.PrimarySecret(&s, p.r.Options.IncludeLabelPrefix)
		default:
			continue
		}
		// Each primary that mounts the copy owns it (not as its controller): a config shared
		// by two Canaries' targets has one copy, which goes when the last of them does. Each
		// Canary applies its own reference as its own field manager, so the two never take
		// each other's reference away.
		if owner := p.primaryOwner(); owner != p.c {
			if err := controllerutil.SetOwnerReference(owner, desired, p.r.Client.Scheme()); err != nil {
				return err
			}
		}
		desired.SetResourceVersion("")
		desired.SetManagedFields(nil)
		//nolint:staticcheck // typed server-side apply of a built-in kind
		if err := p.r.Client.Patch(ctx, desired, client.Apply, client.FieldOwner("herald/"+p.c.Name), client.ForceOwnership); err != nil {
			return fmt.Errorf("writing %s: %w", desired.GetName(), err)
		}
	}
	return nil
}

// syncPrimary makes the primary run the target's current template (at initialisation and at
// promotion), and keeps its governing Service where its kind needs one. Replicas: the
// autoscaler's when there is one, else desiredReplicas.
func (p *pass) syncPrimary(ctx context.Context) error {
	replicas := p.desiredReplicas()
	if p.primary != nil && p.c.Spec.AutoscalerRef != nil {
		replicas = p.primary.Replicas() // the primary's autoscaler owns it
	}
	desired := p.target.Primary(p.primary, p.label, p.value, workloads.ConfigRenames(p.refs), replicas, p.r.Options.IncludeLabelPrefix)
	markPromoted(desired.Template(), p.c.Status.LastAppliedSpec)
	if err := p.syncGoverningService(ctx); err != nil {
		return err
	}
	actual := p.newPrimaryObject()
	actual.Object().SetName(desired.Object().GetName())
	actual.Object().SetNamespace(p.c.Namespace)
	created := p.primary == nil
	if err := p.apply(ctx, actual.Object(), nil, func() error {
		actual.UpdatePrimary(desired)
		labels := actual.Object().GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[contract.LabelPrimaryOf] = p.c.Name
		actual.Object().SetLabels(labels)
		return nil
	}); err != nil {
		return err
	}
	p.primary = actual
	if created {
		// Now that the primary exists, what only it needs becomes its own.
		return p.syncPrimaryConfigs(ctx)
	}
	return nil
}

// markPromoted records on the primary's pod template the revision it runs
// (contract.AnnotationPromotedRevision): a change of only a ConfigMap or Secret leaves the
// template otherwise equal, so without it the primary would not roll, and it tells promoting()
// a primary that has not yet seen the promotion from one that finished it.
func markPromoted(tmpl *corev1.PodTemplateSpec, rev string) {
	if rev == "" {
		return
	}
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	tmpl.Annotations[contract.AnnotationPromotedRevision] = rev
}

// syncGoverningService keeps the headless Service the primary's pods take their DNS names from
// (StatefulSets), built from the target's governing Service.
func (p *pass) syncGoverningService(ctx context.Context) error {
	governing := p.target.GoverningService()
	if governing == "" {
		return nil
	}
	if err := workloads.CheckGoverningService(p.target, p.c); err != nil {
		return stalled("InvalidTarget", "%v", err)
	}
	var targetSvc corev1.Service
	found, err := p.get(ctx, governing, &targetSvc)
	if err != nil {
		return err
	}
	user := &targetSvc
	if !found {
		user = nil
	}
	desired := workloads.PrimaryGoverningService(governing, p.c.Namespace, user, p.label, p.value)
	actual := &corev1.Service{}
	actual.Name, actual.Namespace = desired.Name, desired.Namespace
	return p.apply(ctx, actual, p.primaryOwner(), func() error {
		actual.Labels = desired.Labels
		actual.Spec.Selector, actual.Spec.PublishNotReadyAddresses = desired.Spec.Selector, desired.Spec.PublishNotReadyAddresses
		actual.Spec.Ports = mergePorts(actual.Spec.Ports, desired.Spec.Ports)
		if actual.ResourceVersion == "" {
			actual.Spec.ClusterIP = corev1.ClusterIPNone
		}
		return nil
	})
}

// syncPrimaryReplicas follows a user's replicas wish (herald.dev/desired-replicas or the
// target's replicas) on the primary outside promotions, when no autoscaler sizes it.
func (p *pass) syncPrimaryReplicas(ctx context.Context) error {
	want := p.desiredReplicas()
	if want == nil || p.c.Spec.AutoscalerRef != nil || p.primary == nil {
		return nil
	}
	if r := p.primary.Replicas(); r != nil && *r == *want {
		return nil
	}
	changed := p.primary.Copy()
	changed.ScaleUp(*want)
	if err := p.patch(ctx, changed.Object(), p.primary.Object()); err != nil {
		return err
	}
	p.primary = changed
	return nil
}

// syncHPA copies the target's HorizontalPodAutoscaler for the primary.
func (p *pass) syncHPA(ctx context.Context) error {
	ref := p.c.Spec.AutoscalerRef
	if ref == nil || ref.Kind != "HorizontalPodAutoscaler" {
		return nil
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	found, err := p.get(ctx, ref.Name, &hpa)
	if err != nil {
		return err
	}
	if !found {
		return stalled("AutoscalerNotFound", "autoscalerRef: HorizontalPodAutoscaler %s/%s not found", p.c.Namespace, ref.Name)
	}
	desired := workloads.PrimaryHPA(&hpa, contract.PrimaryName(p.target.Object().GetName()), ref.PrimaryScalerReplicas, p.r.Options.IncludeLabelPrefix)
	actual := &autoscalingv2.HorizontalPodAutoscaler{}
	actual.Name, actual.Namespace = desired.Name, desired.Namespace
	return p.apply(ctx, actual, p.primaryOwner(), func() error {
		actual.Labels, actual.Annotations, actual.Spec = desired.Labels, desired.Annotations, desired.Spec
		return nil
	})
}

// syncServices keeps the -primary and -canary Services (and, with apex, the apex Service) as
// the Canary describes them. Only the fields Herald sets are compared, so defaults the API
// server adds never cause an update. The apex is synced only once the primary is ready, so a
// user's existing Service is never pointed at pods that do not serve yet. An apex Service a
// user made is adopted: what Herald changes of it is recorded and put back when the Canary
// goes (package adopt); one Herald makes is the Canary's own.
func (p *pass) syncServices(ctx context.Context, withApex bool) error {
	apex, primary, canary := workloads.Services(p.c, p.label, p.value, p.target.Template())
	services := []*corev1.Service{primary, canary}
	if withApex {
		services = append(services, apex)
	}
	for _, desired := range services {
		var actual corev1.Service
		err := p.r.Client.Get(ctx, client.ObjectKeyFromObject(desired), &actual)
		isApex := desired == apex
		owner := p.primaryOwner()
		if isApex {
			owner = p.c
		}
		if err == nil && serviceUpToDate(&actual, desired) && (isApex || metav1.IsControlledBy(&actual, owner)) {
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading service %s: %w", desired.Name, err)
		}
		obj := &corev1.Service{}
		obj.Name, obj.Namespace = desired.Name, desired.Namespace
		if _, err := controllerutil.CreateOrUpdate(ctx, p.r.Client, obj, func() error {
			switch {
			case obj.ResourceVersion == "": // not found: Herald creates it
				if err := p.setOwner(obj, owner); err != nil {
					return err
				}
			case isApex && metav1.GetControllerOf(obj) == nil:
				// A user's Service: recorded as it was before the first change.
				if err := adopt.Record(obj, p.c.Name, shapeOf(obj)); err != nil {
					return err
				}
			case !isApex:
				if err := p.setOwner(obj, owner); err != nil {
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
			if obj.ResourceVersion == "" {
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

// serviceShape is what Herald changes of an adopted Service's spec, recorded to be put back.
type serviceShape struct {
	Selector            map[string]string    `json:"selector,omitempty"`
	Ports               []corev1.ServicePort `json:"ports,omitempty"`
	TrafficDistribution *string              `json:"trafficDistribution,omitempty"`
}

func shapeOf(s *corev1.Service) serviceShape {
	return serviceShape{Selector: s.Spec.Selector, Ports: s.Spec.Ports, TrafficDistribution: s.Spec.TrafficDistribution}
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

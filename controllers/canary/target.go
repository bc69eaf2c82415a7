package canary

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
)

// errTargetNotFound: the target does not exist (yet).
var errTargetNotFound = fmt.Errorf("target not found")

// getTarget reads the target and names its pods (contract.SelectorLabel). It returns
// errTargetNotFound when the target does not exist, and a terminal error when it cannot be
// released as it is.
func (p *pass) getTarget(ctx context.Context) error {
	ref := p.c.Spec.TargetRef
	w, err := workloads.New(ref.Kind)
	if err != nil {
		return stalled("UnsupportedTarget", "spec.targetRef.kind: %v", err)
	}
	found, err := p.get(ctx, ref.Name, w.Object())
	if err != nil {
		return err
	}
	if !found {
		return errTargetNotFound
	}
	label, value, err := contract.SelectorLabel(w.Selector(), w.Template().Labels, p.r.Options.SelectorLabels)
	if err != nil {
		return stalled("InvalidTarget", "target %s %s/%s: %v", w.Kind(), p.c.Namespace, ref.Name, err)
	}
	p.target, p.label, p.value = w, label, value
	return nil
}

// loadTarget reads what a pass works with, once: the target, its tracked configs and revision,
// and the primary.
func (p *pass) loadTarget(ctx context.Context) error {
	if err := p.getTarget(ctx); err != nil {
		return err
	}
	if err := p.ensureTargetLabel(ctx); err != nil {
		return err
	}
	if err := p.trackConfigs(ctx); err != nil {
		return err
	}
	rev, err := contract.Revision(p.target.Template(), p.configs)
	if err != nil {
		return err
	}
	p.rev = rev
	p.log = p.log.WithValues("revision", rev)
	if err := p.loadPrimary(ctx); err != nil {
		return err
	}
	return p.adoptFlagger(ctx)
}

// loadPrimary reads the primary; p.primary stays nil when it does not exist yet.
func (p *pass) loadPrimary(ctx context.Context) error {
	primary := p.newPrimaryObject()
	found, err := p.get(ctx, contract.PrimaryName(p.target.Object().GetName()), primary.Object())
	if found {
		p.primary = primary
	}
	return err
}

// ensureTargetLabel puts Herald's label on the target, so the workload webhook sees it.
func (p *pass) ensureTargetLabel(ctx context.Context) error {
	obj := p.target.Object()
	if obj.GetLabels()[contract.LabelCanary] == p.c.Name {
		return nil
	}
	changed := p.target.Copy()
	labels := changed.Object().GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[contract.LabelCanary] = p.c.Name
	changed.Object().SetLabels(labels)
	if err := p.patch(ctx, changed.Object(), obj); err != nil {
		return err
	}
	p.target = changed
	return nil
}

// trackConfigs applies contract's tracking rule to the ConfigMaps and Secrets the target
// references: it labels the tracked ones (so the webhooks see them), keeps their checksum
// annotation current (the config webhook does so on every change; this covers changes made
// while it was down), takes Herald's marks off a config that opted out, and records the
// checksums and references in the pass. A referenced config that does not exist stalls the
// Canary, unless every reference to it is optional.
func (p *pass) trackConfigs(ctx context.Context) error {
	p.configs, p.refs = nil, nil
	if !p.r.Options.ConfigTracking {
		return nil
	}
	for _, ref := range contract.Refs(&p.target.Template().Spec) {
		var obj client.Object = &corev1.ConfigMap{}
		if ref.Kind == contract.Secret {
			obj = &corev1.Secret{}
		}
		// Configs are read live: the manager caches no application Secrets, and a config
		// is not in the metadata cache until it is tracked.
		if err := p.r.APIReader.Get(ctx, types.NamespacedName{Namespace: p.c.Namespace, Name: ref.Name}, obj); err != nil {
			switch {
			case apierrors.IsNotFound(err) && ref.Optional:
				continue
			case apierrors.IsNotFound(err):
				return stalled("ConfigNotFound", "%s %s/%s referenced by the target does not exist", ref.Kind, p.c.Namespace, ref.Name)
			}
			return fmt.Errorf("reading %s: %w", ref.Key(), err)
		}
		sum, tracked := contract.TrackedChecksum(obj)
		if !tracked {
			if err := p.untrack(ctx, obj); err != nil {
				return err
			}
			continue
		}
		if obj.GetLabels()[contract.LabelTracked] != contract.TrackedValue || obj.GetAnnotations()[contract.AnnotationChecksum] != sum {
			changed := obj.DeepCopyObject().(client.Object)
			setMeta(changed, contract.LabelTracked, contract.TrackedValue, contract.AnnotationChecksum, sum)
			if err := p.patch(ctx, changed, obj); err != nil {
				return err
			}
		}
		if p.configs == nil {
			p.configs = map[string]string{}
		}
		p.configs[ref.Key()] = sum
		p.refs = append(p.refs, ref)
	}
	return nil
}

// untrack takes Herald's label and checksum off a config that is not (or no longer) tracked.
func (p *pass) untrack(ctx context.Context, obj client.Object) error {
	_, labelled := obj.GetLabels()[contract.LabelTracked]
	_, summed := obj.GetAnnotations()[contract.AnnotationChecksum]
	if !labelled && !summed {
		return nil
	}
	changed := obj.DeepCopyObject().(client.Object)
	labels, annotations := changed.GetLabels(), changed.GetAnnotations()
	delete(labels, contract.LabelTracked)
	delete(annotations, contract.AnnotationChecksum)
	changed.SetLabels(labels)
	changed.SetAnnotations(annotations)
	err := p.patch(ctx, changed, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// setMeta sets a label and an annotation on obj.
func setMeta(obj client.Object, label, labelValue, annotation, annotationValue string) {
	labels, annotations := obj.GetLabels(), obj.GetAnnotations()
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	labels[label], annotations[annotation] = labelValue, annotationValue
	obj.SetLabels(labels)
	obj.SetAnnotations(annotations)
}

// desiredReplicas is what the primary should run when no autoscaler sizes it: the target's own
// replicas when it runs, else the wish a user expressed while it was idle, else the primary's,
// else 1. Kinds without replicas give nil.
func (p *pass) desiredReplicas() *int32 {
	t := p.target
	if t.Replicas() == nil {
		return nil
	}
	if r := t.Replicas(); *r > 0 {
		n := *r
		return &n
	}
	if v, ok := t.Object().GetAnnotations()[contract.AnnotationDesiredReplicas]; ok {
		if n, err := strconv.ParseInt(v, 10, 32); err == nil && n > 0 {
			r := int32(n)
			return &r
		}
	}
	if p.primary != nil && p.primary.Replicas() != nil {
		n := *p.primary.Replicas()
		return &n
	}
	one := int32(1)
	return &one
}

package canary

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// The Canary webhook never refuses a Canary because an object it names does not exist yet
// (kubectl apply -f dir/ goes alphabetically, Helm installs custom kinds in file order, Flux
// dry-runs a whole batch first): the Canary waits instead, Stalled with the missing object's
// field and name, and proceeds on its own once it appears (MetricTemplates and AlertProviders
// are watched; see referencedBy).

// checkReferences stalls the pass while a MetricTemplate or AlertProvider the Canary names
// does not exist, or while its autoscaler is of a kind Herald does not copy.
func (p *pass) checkReferences(ctx context.Context) error {
	c := p.c
	if ref := c.Spec.AutoscalerRef; ref != nil && ref.Kind != "HorizontalPodAutoscaler" {
		return stalled("UnsupportedAutoscaler", "spec.autoscalerRef.kind: %s is not supported: Herald copies HorizontalPodAutoscalers only (KEDA ScaledObjects are not supported)", ref.Kind)
	}
	a := c.GetAnalysis()
	if a == nil {
		return nil
	}
	for i, m := range a.Metrics {
		if m.TemplateRef == nil || m.TemplateRef.Name == "" {
			continue
		}
		key := types.NamespacedName{Namespace: orDefault(m.TemplateRef.Namespace, c.Namespace), Name: m.TemplateRef.Name}
		if p.r.Options.NoCrossNamespaceRefs && key.Namespace != c.Namespace {
			return stalled("CrossNamespaceRef", "spec.analysis.metrics[%d].templateRef.namespace: %s is not the Canary's namespace, and cross-namespace references are disabled (-no-cross-namespace-refs)", i, key.Namespace)
		}
		found, err := p.exists(ctx, key, &flaggerv1.MetricTemplate{})
		if err != nil {
			return err
		}
		if !found {
			return stalled("MetricTemplateNotFound", "spec.analysis.metrics[%d].templateRef: MetricTemplate %s not found, waiting for it", i, key)
		}
	}
	for i, al := range a.Alerts {
		if al.ProviderRef.Name == "" {
			continue
		}
		key := types.NamespacedName{Namespace: orDefault(al.ProviderRef.Namespace, c.Namespace), Name: al.ProviderRef.Name}
		if p.r.Options.NoCrossNamespaceRefs && key.Namespace != c.Namespace {
			return stalled("CrossNamespaceRef", "spec.analysis.alerts[%d].providerRef.namespace: %s is not the Canary's namespace, and cross-namespace references are disabled (-no-cross-namespace-refs)", i, key.Namespace)
		}
		found, err := p.exists(ctx, key, &flaggerv1.AlertProvider{})
		if err != nil {
			return err
		}
		if !found {
			return stalled("AlertProviderNotFound", "spec.analysis.alerts[%d].providerRef: AlertProvider %s not found, waiting for it", i, key)
		}
	}
	return nil
}

func (p *pass) exists(ctx context.Context, key types.NamespacedName, obj client.Object) (bool, error) {
	err := p.r.Client.Get(ctx, key, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		// The cache does not cover every namespace (-namespace): an object of another
		// namespace, as Flagger's tutorials keep their MetricTemplates in flagger-system, is
		// read from the API server, as the metric checks and alerts read it.
		err = p.r.APIReader.Get(ctx, key, obj)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %T %s: %w", obj, key, err)
	}
	return true, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// referencedBy maps a MetricTemplate or AlertProvider to the Canaries that name it, so that a
// Canary waiting for it proceeds as soon as it is created.
func referencedBy(list func(ctx context.Context, l *flaggerv1.CanaryList) error, isTemplate bool) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var canaries flaggerv1.CanaryList
		if err := list(ctx, &canaries); err != nil {
			return nil
		}
		var out []flaggerv1.Canary
		for _, c := range canaries.Items {
			a := c.GetAnalysis()
			if a == nil {
				continue
			}
			names := func(ns, name string) bool {
				return name == o.GetName() && orDefault(ns, c.Namespace) == o.GetNamespace()
			}
			match := false
			if isTemplate {
				for _, m := range a.Metrics {
					match = match || (m.TemplateRef != nil && names(m.TemplateRef.Namespace, m.TemplateRef.Name))
				}
			} else {
				for _, al := range a.Alerts {
					match = match || names(al.ProviderRef.Namespace, al.ProviderRef.Name)
				}
			}
			if match {
				out = append(out, c)
			}
		}
		return requests(out)
	})
}

/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package canary holds Herald's validating admission webhooks for its own kinds:
// Canary, MetricTemplate and AlertProvider (flagger.app/v1beta1, CREATE and UPDATE).
//
// They check what the CRD schema and its CEL rules cannot: the provider is one Herald
// implements, the target exists and is selected by one of the supported labels (the first wins),
// metrics name a builtin or an existing MetricTemplate, durations, weights and URLs are
// sound. Every problem is reported at once, as a field.ErrorList inside an Invalid status
// (HTTP 422), so `kubectl apply` lists them field by field; risky but legal settings come
// back as admission warnings that name the field too.
//
// The validators read only from the manager's informer cache, never from the API server.
// A failed lookup other than NotFound never blocks a write: it becomes a warning. An update
// that leaves the spec unchanged (status and metadata writes by the controller, GitOps
// re-applies) is allowed without any check or lookup. Deletes are always allowed.
//
// The webhooks are declared with failurePolicy: Fail (they guard Herald's own kinds) and a
// short timeout. Nothing is defaulted: mutating stored objects would fight GitOps tools.
package canary

import (
	"context"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/webhooks"
)

// The webhook paths and registrations (selectors, timeouts, failure policy) are defined once,
// in webhooks.Configurations.

// The lookups need read access to the kinds below (for the manager's cache).
//
// +kubebuilder:rbac:groups=apps,resources=deployments;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=flagger.app,resources=metrictemplates;alertproviders,verbs=get;list;watch

// DefaultLookupTimeout bounds the cache reads of one validation.
const DefaultLookupTimeout = time.Second

// Options configures the validators.
type Options struct {
	// DefaultProvider is the provider of Canaries without spec.provider (the controller's
	// --mesh-provider). Default "istio".
	DefaultProvider string

	// SelectorLabels are the labels of which a target's spec.selector.matchLabels must use
	// one; the first found names its pods (the controller's --selector-labels). Default
	// contract.DefaultSelectorLabels.
	SelectorLabels []string

	// Reader reads targets, MetricTemplates and AlertProviders. It must be a cache, never a
	// live client. SetupWithManager defaults it to the manager's cache. When nil (in a
	// validator built directly), no lookup is made.
	Reader client.Reader

	// MissReader reads from the API server what Reader does not have: an object created a
	// moment before the Canary (the same kubectl apply, or a GitOps commit) may not have
	// reached the cache yet, and refusing the Canary for it would be wrong. Only misses pay
	// for it. SetupWithManager defaults it to the manager's API reader.
	MissReader client.Reader

	// NoCrossNamespaceRefs refuses templateRef and providerRef namespaces other than the
	// Canary's (Flagger's -no-cross-namespace-refs, which the controller enforces too).
	NoCrossNamespaceRefs bool

	// LookupTimeout bounds all the cache reads of one validation together (a read from an
	// informer that has not synced yet blocks); a read that times out becomes a warning.
	// Default DefaultLookupTimeout, well below the webhook's 3 s timeout.
	LookupTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.DefaultProvider == "" {
		o.DefaultProvider = flaggerv1.ProviderIstio
	}
	if len(o.SelectorLabels) == 0 {
		o.SelectorLabels = contract.DefaultSelectorLabels
	}
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = DefaultLookupTimeout
	}
	return o
}

// SetupWithManager registers the Canary, MetricTemplate and AlertProvider validating
// webhooks with the manager's webhook server, at the paths controller-runtime derives
// (/validate-flagger-app-v1beta1-canary, -metrictemplate, -alertprovider).
//
// When opts.Reader is nil or the manager's cache, the informers the Canary validator reads
// (the target kinds, MetricTemplates, AlertProviders) are registered with the cache
// now, so that they start and sync with the manager instead of on the first request.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Reader == nil {
		opts.Reader = mgr.GetCache()
	}
	if opts.MissReader == nil {
		opts.MissReader = mgr.GetAPIReader()
	}
	if c, ok := opts.Reader.(cache.Cache); ok && c == mgr.GetCache() {
		objs := []client.Object{&flaggerv1.MetricTemplate{}, &flaggerv1.AlertProvider{}}
		for _, kind := range workloads.Kinds {
			w, _ := workloads.New(kind)
			objs = append(objs, w.Object())
		}
		for _, obj := range objs {
			if _, err := c.GetInformer(context.Background(), obj, cache.BlockUntilSynced(false)); err != nil {
				return fmt.Errorf("canary webhook: watching %T: %w", obj, err)
			}
		}
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &flaggerv1.Canary{}).
		WithValidator(NewCanaryValidator(opts)).
		WithValidatorCustomPath(webhooks.CanaryPath).Complete(); err != nil {
		return fmt.Errorf("canary webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &flaggerv1.MetricTemplate{}).
		WithValidator(&MetricTemplateValidator{}).
		WithValidatorCustomPath(webhooks.MetricTemplatePath).Complete(); err != nil {
		return fmt.Errorf("metrictemplate webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &flaggerv1.AlertProvider{}).
		WithValidator(&AlertProviderValidator{}).
		WithValidatorCustomPath(webhooks.AlertProviderPath).Complete(); err != nil {
		return fmt.Errorf("alertprovider webhook: %w", err)
	}
	return nil
}

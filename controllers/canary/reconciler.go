// Package canary is the Canary controller: it initialises a target (primary workload, Services,
// primary copies of tracked configs), notices new revisions, runs the analysis at the Canary's
// interval and promotes or rolls back.
//
// It is event-driven: watches on Canaries, targets, primaries and tracked configs reconcile at
// once; only the analysis cadence uses RequeueAfter, computed from the time of the last step
// (status.lastTransitionTime) so that steps do not drift. All state is in Canary.status, written
// by one deferred patch per reconcile, so a restarted controller resumes where the last one
// stopped.
package canary

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/alerts"
	"github.com/herald-rollouts/herald/controllers/hooks"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
	"github.com/herald-rollouts/herald/controllers/metrics"
	"github.com/herald-rollouts/herald/controllers/router"
)

// Finalizer lets Herald remove its labels from the target and configs (and, with
// revertOnDeletion, restore the target) before a Canary goes away.
const Finalizer = "herald.dev/finalizer"

// targetIndex indexes Canaries by "<kind>/<name>" of their target.
const targetIndex = "spec.targetRef"

// Options configure the reconciler.
type Options struct {
	// SelectorLabels are the labels that identify a workload (-selector-labels).
	SelectorLabels []string
	// ConfigTracking includes referenced ConfigMaps and Secrets in revisions.
	ConfigTracking bool
	// MeshProvider is the provider of Canaries without spec.provider (-mesh-provider).
	MeshProvider string
	// WatchIstio watches the VirtualServices and DestinationRules Herald owns, so that direct
	// edits are put back at once; only when the cluster serves Istio's CRDs.
	WatchIstio bool
	// PodPollInterval is how often pods of a canary that is not ready are checked for crash
	// loops and image pull errors (pods are not watched: caching every pod would be costly).
	PodPollInterval time.Duration
}

// Reconciler reconciles Canaries.
type Reconciler struct {
	Client client.Client
	// APIReader reads what the cache does not hold (configs before they are tracked, pods).
	APIReader client.Reader
	// Events is a core/v1 recorder on purpose: the events.k8s.io recorder folds events with the
	// same type, reason and action into one series and keeps only the first message, which
	// would lose Flagger's messages (all reason "Synced"); core/v1 events are keyed by message.
	Events  record.EventRecorder
	Metrics *metrics.Recorder
	Hooks   *hooks.Caller
	// Checks runs the analysis metrics against Prometheus.
	Checks *metricchecks.Checker
	// Alerts sends phase changes to the Canary's AlertProviders; nil disables alerts.
	Alerts  *alerts.Dispatcher
	Options Options
	// Now is the clock; tests may pin it.
	Now func() time.Time
}

// SetupWithManager registers the controller. metadataCache is the metadata-only cache of
// tracked configs (see cmd/herald), watched so that a config change starts an analysis.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, metadataCache cache.Cache) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Options.PodPollInterval == 0 {
		r.Options.PodPollInterval = 2 * time.Second
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &flaggerv1.Canary{}, targetIndex, func(o client.Object) []string {
		c := o.(*flaggerv1.Canary)
		return []string{c.Spec.TargetRef.Kind + "/" + c.Spec.TargetRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing canaries by target: %w", err)
	}
	byTarget := func(kind string) handler.EventHandler {
		return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list flaggerv1.CanaryList
			if err := mgr.GetCache().List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{targetIndex: kind + "/" + o.GetName()}); err != nil {
				return nil
			}
			return requests(list.Items)
		})
	}
	byTrackedConfig := func(kind string) handler.TypedEventHandler[*metav1.PartialObjectMetadata, reconcile.Request] {
		return handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, o *metav1.PartialObjectMetadata) []reconcile.Request {
			var list flaggerv1.CanaryList
			if err := mgr.GetCache().List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
				return nil
			}
			var out []flaggerv1.Canary
			for _, c := range list.Items {
				if _, ok := c.Status.TrackedConfigs[kind+"/"+o.GetName()]; ok {
					out = append(out, c)
				}
			}
			return requests(out)
		})
	}
	partial := func(kind string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: kind}}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("canary").
		// Hook calls can take up to their timeout; one slow endpoint must not stall every Canary.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		For(&flaggerv1.Canary{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionPredicate()))).
		Owns(&appsv1.Deployment{}).
		Owns(&appsv1.DaemonSet{}).
		Owns(&corev1.Service{}).
		Watches(&appsv1.Deployment{}, byTarget("Deployment")).
		Watches(&appsv1.DaemonSet{}, byTarget("DaemonSet"))
	if r.Options.WatchIstio {
		b = b.Owns(&istionetworking.VirtualService{}).Owns(&istionetworking.DestinationRule{})
	}
	if metadataCache != nil {
		b = b.WatchesRawSource(source.Kind(metadataCache, partial("ConfigMap"), byTrackedConfig("configmap"))).
			WatchesRawSource(source.Kind(metadataCache, partial("Secret"), byTrackedConfig("secret")))
	}
	return b.Complete(r)
}

func requests(canaries []flaggerv1.Canary) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(canaries))
	for _, c := range canaries {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
	}
	return out
}

func deletionPredicate() predicate.Funcs {
	return predicate.NewPredicateFuncs(func(o client.Object) bool { return !o.GetDeletionTimestamp().IsZero() })
}

// Reconcile orchestrates one pass: fetch, deletion, finalizer, suspend, then the phase work in
// run; the status is written once, at the end.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	log := ctrl.LoggerFrom(ctx).WithValues("canary", req.Name, "namespace", req.Namespace)
	ctx = ctrl.LoggerInto(ctx, log)

	// The Canary is read from the API server, not the cache: the previous pass's status patch
	// may not have reached the cache yet, and acting on the older status would repeat a step
	// (an event, a hook call, a promotion). The workqueue never runs two passes of one Canary
	// at once, so a fresh read always sees the last pass's result.
	var c flaggerv1.Canary
	if err := r.APIReader.Get(ctx, req.NamespacedName, &c); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("reading canary: %w", err)
	}
	if !c.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &c)
	}
	if !controllerutil.ContainsFinalizer(&c, Finalizer) {
		patch := client.MergeFrom(c.DeepCopy())
		controllerutil.AddFinalizer(&c, Finalizer)
		if err := r.Client.Patch(ctx, &c, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}
	if c.Spec.Suspend {
		log.V(1).Info("Canary is suspended")
		return ctrl.Result{}, nil
	}

	before := c.DeepCopy()
	p := &pass{r: r, c: &c, log: log, now: r.Now(), deferEvents: true}
	defer func() {
		if !equality.Semantic.DeepEqual(before.Status, c.Status) {
			if perr := r.Client.Status().Patch(ctx, &c, client.MergeFrom(before)); perr != nil {
				// The step is not recorded, so it will run again: its once-only effects must not.
				err = errors.Join(err, fmt.Errorf("writing status: %w", perr))
				return
			}
		}
		// Every pass, not only on a change: after a restart or a fail-over the series must be
		// there for idle Canaries too.
		r.Metrics.SetStatus(c.Spec.TargetRef.Name, c.Namespace, c.Status.Phase)
		for _, f := range p.afterStatus {
			f()
		}
	}()

	result, err = p.run(ctx)
	var terminal *terminalError
	if errors.As(err, &terminal) {
		// A configuration problem: say so on the Canary and wait for it to change.
		p.event(corev1.EventTypeWarning, "%s", terminal.Error())
		r.Metrics.IncReconcileError("config")
		// Not every fix arrives as a watched change (an HPA created later, say): look again
		// at the analysis interval.
		return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
	}
	if apierrors.IsConflict(err) {
		// Another writer got there first (usually our own earlier pass, seen through a stale
		// cache): try again shortly with fresh objects, without logging an error.
		return ctrl.Result{RequeueAfter: 200 * time.Millisecond}, nil
	}
	if err != nil {
		r.Metrics.IncReconcileError("transient")
	}
	return result, err
}

// terminalError is a problem only a change to the Canary or its target can fix.
type terminalError struct{ msg string }

func (e *terminalError) Error() string { return e.msg }

func terminalf(format string, args ...any) error {
	return &terminalError{msg: fmt.Sprintf(format, args...)}
}

// pass is the state of one reconcile of one Canary.
type pass struct {
	r   *Reconciler
	c   *flaggerv1.Canary
	log logr.Logger
	now time.Time
	// provider and router carry the Canary's traffic (see resolveProvider); mirrored is
	// whether the canary currently receives a copy of the traffic (read by keepRoutes, once
	// per pass).
	provider string
	router   router.Router
	mirrored bool
	// afterStatus runs once the pass's status is written: effects that must happen once per
	// step (post-rollout hooks, success and failure counters) wait for the step to be recorded.
	afterStatus []func()
	// deferEvents publishes events in afterStatus (the main pass); elsewhere at once.
	deferEvents bool
}

// Package canary is the Canary controller: it initialises a target (primary workload, Services,
// primary copies of tracked configs), notices new revisions, runs the analysis at the Canary's
// interval and promotes or rolls back.
//
// It is event-driven: watches on Canaries, targets, primaries and tracked configs reconcile at
// once, and predicates drop the events that cannot change a decision (wakeups.go). RequeueAfter
// is for the analysis cadence, computed from the time of the last step
// (status.lastTransitionTime) so that steps do not drift, and for what no event announces while
// a rollout is awaited (crash-looping canary pods, the progress deadline: waitPoll, primaryPoll). All state is in Canary.status, written
// by one deferred patch per reconcile, so a restarted controller resumes where the last one
// stopped; what a pass announces (events, alerts, counters, post-rollout hooks) is derived from
// the difference between the status it read and the status it wrote, once that write succeeded.
//
// Files: reconciler.go (setup, one pass), target.go (reading the target and its configs),
// phases.go (what each phase does), analysis.go (the chain of checks of an analysis step),
// traffic.go (weights, iterations, routes), sync.go (primaries, Services, autoscalers),
// status.go (phase, conditions, what a status change announces), deletion.go, alerts.go,
// wakeups.go (what wakes a Canary, and the predicates that keep it to what matters).
package canary

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
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
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
)

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
	// OwnedRoutes are further routing kinds Herald writes and the cluster serves (the Gateway
	// API's HTTPRoute and GRPCRoute), watched for the same reason.
	OwnedRoutes []client.Object
	// PodPollInterval is how often pods of a canary that is not ready are checked for crash
	// loops and image pull errors (pods are not watched: caching every pod would be costly).
	PodPollInterval time.Duration
	// Workers is how many Canaries are reconciled at once (-threadiness); default 8. Hook
	// calls run off the workers, but a metric query can take its 5 s timeout on one, and one
	// slow Prometheus must not delay every other Canary's step.
	Workers int
	// IncludeLabelPrefix lists the prefixes of the target's labels and annotations copied to
	// the primary and the primary copies of configs and autoscalers (-include-label-prefix,
	// "*" for all; none when empty).
	IncludeLabelPrefix workloads.LabelPrefixes
	// EventWebhook receives every event of a Canary without event hooks (-event-webhook).
	EventWebhook string
	// ClusterName is shown as the Cluster field of every alert (-cluster-name).
	ClusterName string
	// NoCrossNamespaceRefs stalls Canaries whose MetricTemplates or AlertProviders are in
	// another namespace (-no-cross-namespace-refs), as Flagger refuses to run them.
	NoCrossNamespaceRefs bool
	// InitializationRate is how many new Canaries a second may start initialising
	// (-initialization-rate, pace.go); 0 for no limit. InitializationBurst start at once.
	InitializationRate  float64
	InitializationBurst int
	// Shard selects the Canaries this instance reconciles (-watch-label-selector); nil for all.
	// The cache holds only those, but requests also come from labels and hook results, so
	// each pass checks the Canary it reads.
	Shard labels.Selector
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
	// HookRunner makes the hook calls of the analysis off the reconcile workers; nil makes
	// them inside Reconcile (tests).
	HookRunner *hooks.Runner
	// EventHooks posts events to event hooks from a bounded pool; nil posts them from a
	// goroutine each (tests).
	EventHooks *hooks.EventPoster
	// Checks runs the analysis metrics against Prometheus.
	Checks *metricchecks.Checker
	// Alerts sends phase changes to the Canary's AlertProviders; nil disables alerts.
	Alerts  *alerts.Dispatcher
	Options Options
	// Now is the clock; tests may pin it.
	Now func() time.Time

	// seen lets passes read their Canary from the cache when it is current (freshness.go).
	seen seenVersions
	// readsTarget is what each Canary's last pass left: whether its passes read the target's
	// status (wakeups.go). The cache learns it only once the status write comes back, later
	// than the target's own status updates that follow a scale-up.
	readsTarget sync.Map // types.NamespacedName → bool
	// own is what the controller's own writes returned (ownwrites.go).
	own ownWrites
	// pace spaces out the start of new Canaries' initialisation (pace.go).
	pace *initPace
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
	if r.Options.Workers <= 0 {
		r.Options.Workers = 8
	}
	r.pace = newInitPace(r.Options.InitializationRate, r.Options.InitializationBurst, r.Now)
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &flaggerv1.Canary{}, targetIndex, func(o client.Object) []string {
		c := o.(*flaggerv1.Canary)
		return []string{targetKey(c.Spec.TargetRef.Kind, c.Spec.TargetRef.Name)}
	}); err != nil {
		return fmt.Errorf("indexing canaries by target: %w", err)
	}
	targeting := func(ctx context.Context, kind string, o client.Object) ([]flaggerv1.Canary, error) {
		var list flaggerv1.CanaryList
		err := mgr.GetCache().List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{targetIndex: targetKey(kind, o.GetName())})
		return list.Items, err
	}
	byTarget := func(kind string) handler.EventHandler {
		return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			list, err := targeting(ctx, kind, o)
			if err != nil {
				return nil
			}
			return requests(list)
		})
	}
	byTrackedConfig := func(kind contract.ConfigKind) handler.TypedEventHandler[*metav1.PartialObjectMetadata, reconcile.Request] {
		return handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, o *metav1.PartialObjectMetadata) []reconcile.Request {
			var list flaggerv1.CanaryList
			if err := mgr.GetCache().List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
				return nil
			}
			var out []flaggerv1.Canary
			for _, c := range list.Items {
				if _, ok := c.Status.TrackedConfigs[contract.ConfigKey(kind, o.GetName())]; ok {
					out = append(out, c)
				}
			}
			return requests(out)
		})
	}
	partial := func(kind string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: kind}}
	}
	inc := func(source string) {
		if r.Metrics != nil {
			r.Metrics.IncWakeup(source)
		}
	}
	// The events of the passes' own writes wake no one (ownwrites.go).
	r.Client = recordingClient{Client: r.Client, own: &r.own}
	ownedBy := counted("route", inc, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &flaggerv1.Canary{}, handler.OnlyControllerOwner()))
	// Watches rather than For and Owns, so that every source is counted (wakeups.go).
	b := ctrl.NewControllerManagedBy(mgr).
		Named("canary").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.Workers, LogConstructor: canaryLogs(mgr.GetLogger())}).
		Watches(&flaggerv1.Canary{}, counted("canary", inc, &handler.EnqueueRequestForObject{}),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionPredicate(), requestChanged())))
	// A primary is not owned by its Canary (see sync.go) but labelled with its name; what only
	// the primary needs is owned by the primary and labelled the same way. So are Herald's
	// Services; an apex Service Herald made is also owned by the Canary, which finds it should
	// the label be taken off.
	byPrimaryOf := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return canaryOf(o, false)
	})
	byServiceOf := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return canaryOf(o, true)
	})
	for _, kind := range workloads.Kinds {
		w, _ := workloads.New(kind)
		watching := func(o client.Object) bool {
			list, err := targeting(context.Background(), kind, o)
			return err != nil || slices.ContainsFunc(list, r.watchesTarget)
		}
		b = b.Watches(w.Object(), counted("target", inc, byTarget(kind)), builder.WithPredicates(r.own.watch(w.Object()), workloadChanged(), statusWatchedBy(watching))).
			Watches(w.Object(), counted("primary", inc, byPrimaryOf), builder.WithPredicates(r.own.watch(w.Object()), workloadChanged(), notCreated()))
	}
	b = b.Watches(&corev1.Service{}, counted("service", inc, byServiceOf), builder.WithPredicates(r.own.watch(&corev1.Service{}), notCreated()))
	if r.Options.WatchIstio {
		b = b.Watches(&istionetworking.VirtualService{}, ownedBy, builder.WithPredicates(r.own.watch(&istionetworking.VirtualService{}))).
			Watches(&istionetworking.DestinationRule{}, ownedBy, builder.WithPredicates(r.own.watch(&istionetworking.DestinationRule{})))
	}
	for _, kind := range r.Options.OwnedRoutes {
		b = b.Watches(kind, ownedBy, builder.WithPredicates(r.own.watch(kind)))
	}
	listCanaries := func(ctx context.Context, l *flaggerv1.CanaryList) error { return mgr.GetCache().List(ctx, l) }
	b = b.Watches(&flaggerv1.MetricTemplate{}, counted("template", inc, referencedBy(listCanaries, true))).
		Watches(&flaggerv1.AlertProvider{}, counted("alertprovider", inc, referencedBy(listCanaries, false)))
	if metadataCache != nil {
		b = b.WatchesRawSource(source.Kind(metadataCache, partial("ConfigMap"), counted("config", inc, byTrackedConfig(contract.ConfigMap)))).
			WatchesRawSource(source.Kind(metadataCache, partial("Secret"), counted("config", inc, byTrackedConfig(contract.Secret))))
	}
	if r.pace.wakeups != nil {
		// A new Canary's turn to initialise wakes it, and the end of a bulk apply the
		// Canaries that have not written that they wait (pace.go).
		b = b.WatchesRawSource(source.Channel(r.pace.wakeups, counted("turn", inc, &handler.EnqueueRequestForObject{}))).
			WatchesRawSource(source.Channel(r.pace.marks, counted("mark", inc, &handler.EnqueueRequestForObject{})))
	}
	if r.HookRunner != nil {
		// A finished hook call wakes its Canary, whose pass then reads the result.
		b = b.WatchesRawSource(source.Channel(r.HookRunner.Events(), counted("hook", inc, &handler.EnqueueRequestForObject{})))
	}
	if err := b.Complete(r); err != nil {
		return err
	}
	return r.setupReleaser(mgr)
}

// canaryOf names the Canary a primary or one of Herald's Services belongs to: its
// LabelPrimaryOf label, else (withOwner) its Canary controller owner.
func canaryOf(o client.Object, withOwner bool) []reconcile.Request {
	name := o.GetLabels()[contract.LabelPrimaryOf]
	if owner := metav1.GetControllerOf(o); name == "" && withOwner && owner != nil &&
		schema.FromAPIVersionAndKind(owner.APIVersion, owner.Kind).GroupKind() == flaggerv1.GroupVersion.WithKind("Canary").GroupKind() {
		name = owner.Name
	}
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// targetKey is the targetIndex value of a target; an empty kind is a Deployment, as in the API.
func targetKey(kind, name string) string {
	if kind == "" {
		kind = "Deployment"
	}
	return kind + "/" + name
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
// run; the status is written once, at the end, and what the change of status announces is
// announced once it is written.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	log := ctrl.LoggerFrom(ctx).WithValues("canary", req.Name, "namespace", req.Namespace)
	ctx = inPass(ctrl.LoggerInto(ctx, log))
	// Registered first, so it runs last: it sees the pass's final result, a stall's error
	// already cleared (ownwrites.go).
	defer func() { result = lookAgainIfMissed(ctx, result, err) }()

	if waiting, mark := r.turnOf(ctx, req.NamespacedName); waiting != nil {
		// A new Canary waits for its turn to initialise, reading from the cache and writing
		// only that it waits (but for the first, a bulk apply's Canaries write it once the
		// apply ends); its turn wakes it (pace.go).
		log.V(1).Info("Waiting for a turn to initialise")
		if mark {
			if err := r.markWaiting(ctx, waiting); err != nil {
				return ctrl.Result{}, err
			}
		}
		return ctrl.Result{RequeueAfter: waitBackstop}, nil
	}
	c, err := r.read(ctx, req.NamespacedName)
	if err != nil || c == nil {
		r.readsTarget.Delete(req.NamespacedName)
		if err == nil {
			r.pace.forget(req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if r.Options.Shard != nil && !r.Options.Shard.Matches(labels.Set(c.Labels)) {
		r.seen.forget(req.NamespacedName)
		r.pace.forget(req.NamespacedName)
		r.readsTarget.Delete(req.NamespacedName)
		return ctrl.Result{}, nil // another shard's
	}
	if err := r.dropLegacyFinalizer(ctx, c); err != nil {
		r.seen.forget(req.NamespacedName)
		return ctrl.Result{}, err
	}
	r.seen.remember(c)
	if !c.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the releaser gives the target back once it is gone
	}

	before := c.DeepCopy()
	p := &pass{r: r, c: c, log: log, now: r.Now()}
	defer func() {
		if err == nil || isTerminal(err) {
			// The pass completed (or found a configuration problem): the conditions tell
			// what it saw. After a transient error the pass runs again, and so does this.
			p.setConditions(err)
		}
		if !equality.Semantic.DeepEqual(before.Status, c.Status) {
			// With the resourceVersion the pass read: a pass that acted on a Canary someone
			// changed meanwhile (a user, or another shard after a relabelling) must not record
			// its step nor announce it.
			if perr := r.Client.Status().Patch(ctx, c, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); perr != nil {
				r.seen.forget(req.NamespacedName)
				r.readsTarget.Delete(req.NamespacedName) // the cache's phase is the truth again
				// The step is not recorded, so it will run again: its once-only effects must not.
				if apierrors.IsConflict(perr) && err == nil {
					log.V(1).Info("Canary changed during the pass; running it again", "reason", perr.Error())
					result = ctrl.Result{RequeueAfter: 200 * time.Millisecond}
					return
				}
				err = errors.Join(err, fmt.Errorf("writing status: %w", perr))
				return
			}
			r.seen.remember(c) // the patch's response carries the new resourceVersion
		}
		r.readsTarget.Store(req.NamespacedName, readsTargetStatus(c))
		// Every pass, not only on a change: after a restart or a fail-over the series must be
		// there for idle Canaries too.
		r.Metrics.SetStatus(c.Spec.TargetRef.Name, c.Namespace, c.Status.Phase)
		p.announce(ctx, &before.Status)
		if isTerminal(err) {
			err = nil // reported on the Canary (Stalled); retried at the interval below
		}
	}()

	if c.Spec.Suspend {
		p.event(corev1.EventTypeNormal, "skipping canary run as object is suspended")
		return ctrl.Result{}, nil
	}
	result, err = p.run(ctx)
	var terminal *terminalError
	if errors.As(err, &terminal) {
		r.Metrics.IncReconcileError("config")
		// Not every fix arrives as a watched change (an HPA created later, say): look again
		// at the analysis interval.
		return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, err
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

// terminalError is a problem only a change to the Canary or to an object it names can fix:
// it is shown on the Canary as its Stalled condition (reason and message) instead of being
// retried with backoff.
type terminalError struct{ reason, msg string }

func (e *terminalError) Error() string { return e.msg }

// stalled returns a terminalError with reason (a CamelCase word for the Stalled condition).
func stalled(reason, format string, args ...any) error {
	return &terminalError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

func isTerminal(err error) bool {
	var t *terminalError
	return errors.As(err, &t)
}

// pass is the state of one reconcile of one Canary.
type pass struct {
	r   *Reconciler
	c   *flaggerv1.Canary
	log logr.Logger
	now time.Time

	// The target and what is derived from it, read once at the start of the pass (loadTarget).
	target workloads.Workload
	// label=value names the target's pods (contract.SelectorLabel).
	label, value string
	// primary is the live primary (nil before it exists); replaced by what a write returns.
	primary workloads.Workload
	// rev is the target's revision; configs and refs the configs it tracks.
	rev     string
	configs map[string]string
	refs    []contract.Ref

	// provider and router carry the Canary's traffic (see resolveProvider); mirrored is
	// whether the canary currently receives a copy of the traffic (read by keepRoutes, once
	// per pass).
	provider string
	router   router.Router
	mirrored bool

	// notes are the events of this pass that its status does not tell (which gate halted, why
	// a check failed): published with what the status change announces, once it is written.
	notes []note
	// halting names the gate hook that holds the Canary in a waiting phase (its muteAlert
	// decides the phase change's alert).
	halting string
	// alerts are alerts of this pass that no phase change announces, sent once its status is
	// written (announce).
	alerts []alerts.Message
	// failedChecks are the failed checks of a run this pass rolled back (the status resets
	// them), for its alert.
	failedChecks int
}

// targetPrimary is the target's primary workload kind, as a Workload to read into.
func (p *pass) newPrimaryObject() workloads.Workload {
	w, _ := workloads.New(p.target.Kind())
	return w
}

// get reads name in the Canary's namespace from the cache into obj; found is false when it
// does not exist.
func (p *pass) get(ctx context.Context, name string, obj client.Object) (found bool, err error) {
	err = p.r.Client.Get(ctx, types.NamespacedName{Namespace: p.c.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s %s: %w", kindOf(obj), name, err)
	}
	return true, nil
}

// patch sends the difference between original and changed (a modified copy) as a JSON merge
// patch, as Herald: the workload webhook lets Herald's own writes through to an idle target.
func (p *pass) patch(ctx context.Context, changed, original client.Object) error {
	if err := p.r.Client.Patch(ctx, changed, client.MergeFrom(original)); err != nil {
		return fmt.Errorf("patching %s %s: %w", kindOf(original), original.GetName(), err)
	}
	return nil
}

// kindOf names an object's kind for messages.
func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *appsv1.Deployment:
		return "deployment"
	case *appsv1.DaemonSet:
		return "daemonset"
	case *appsv1.StatefulSet:
		return "statefulset"
	case *corev1.ConfigMap:
		return "configmap"
	case *corev1.Secret:
		return "secret"
	case *corev1.Service:
		return "service"
	}
	return fmt.Sprintf("%T", obj)
}

package canary

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/adopt"
	"github.com/herald-rollouts/herald/controllers/router"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
)

// Deleting a Canary never waits for Herald: a Canary has no finalizer, so deleting it (or its
// namespace) goes through even while Herald is stopped or uninstalled. What must not go with
// it is not owned by it: the primary keeps serving (its Services and config copies are its
// own), a user's objects that Herald adopted keep routing to it. Once the Canary is gone, the
// releaser gives the target back: its replicas (or its nodes) and no Herald mark left, then,
// once it serves again, the adopted objects as they were before the Canary, its configs
// untracked, and finally the primary deleted, which takes what only it needed along. A Herald
// that was stopped does the same for every primary whose Canary went meanwhile, as soon as it
// starts.

type workqueueOf = workqueue.TypedRateLimitingInterface[reconcile.Request]

// releaser is the controller that gives targets back. Its requests name a primary workload.
type releaser struct{ r *Reconciler }

// setupReleaser registers the releaser: it watches primaries (by their LabelPrimaryOf label)
// and the deletion, or the retargeting, of Canaries.
func (r *Reconciler) setupReleaser(mgr ctrl.Manager) error {
	isPrimary := predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, ok := o.GetLabels()[contract.LabelPrimaryOf]
		return ok
	})
	primaryOf := func(c *flaggerv1.Canary) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: contract.PrimaryName(c.Spec.TargetRef.Name)}}
	}
	canaries := handler.Funcs{
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueueOf) {
			if c, ok := e.Object.(*flaggerv1.Canary); ok {
				q.Add(primaryOf(c))
			}
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueueOf) {
			o, okOld := e.ObjectOld.(*flaggerv1.Canary)
			n, okNew := e.ObjectNew.(*flaggerv1.Canary)
			if okOld && okNew && targetKey(o.Spec.TargetRef.Kind, o.Spec.TargetRef.Name) != targetKey(n.Spec.TargetRef.Kind, n.Spec.TargetRef.Name) {
				q.Add(primaryOf(o))
			}
		},
	}
	b := ctrl.NewControllerManagedBy(mgr).Named("canary-release").
		Watches(&flaggerv1.Canary{}, canaries)
	for _, kind := range workloads.Kinds {
		w, _ := workloads.New(kind)
		b = b.Watches(w.Object(), &handler.EnqueueRequestForObject{}, builder.WithPredicates(isPrimary, mayBeOrphaned()))
	}
	return b.Complete(&releaser{r: r})
}

// mayBeOrphaned lets a primary's events through when it appears (at start-up, one whose Canary
// went while Herald was stopped) or its labels change. Its rollouts' status updates and its
// deletion cannot mean its Canary went: that comes as the Canary's own deletion or retargeting,
// and a release under way polls by itself. Each look costs a read of the Canary.
func mayBeOrphaned() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld == nil || e.ObjectNew == nil || !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
		},
		DeleteFunc: func(event.DeleteEvent) bool { return false },
	}
}

// Reconcile releases the target of the primary req names when its Canary is gone.
func (rl *releaser) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r := rl.r
	primary, err := rl.primary(ctx, req.NamespacedName)
	if err != nil || primary == nil {
		return ctrl.Result{}, err
	}
	canaryName := primary.Object().GetLabels()[contract.LabelPrimaryOf]
	if canaryName == "" {
		return ctrl.Result{}, nil
	}
	log := ctrl.LoggerFrom(ctx).WithValues("canary", canaryName, "namespace", req.Namespace, "primary", req.Name)
	ctx = ctrl.LoggerInto(ctx, log)

	key := types.NamespacedName{Namespace: req.Namespace, Name: canaryName}
	inUse := func(c *flaggerv1.Canary) bool {
		return c.DeletionTimestamp.IsZero() &&
			targetKey(c.Spec.TargetRef.Kind, contract.PrimaryName(c.Spec.TargetRef.Name)) == targetKey(primary.Kind(), req.Name)
	}
	// A cache that shows the Canary using this primary is enough to leave it: should the
	// Canary have gone meanwhile, its deletion event brings the primary back here. Only a
	// verdict of "gone" is read live: acting on a cache that has not seen a new Canary of the
	// same name would tear down what it is about to use.
	var cached, c flaggerv1.Canary
	if err := r.Client.Get(ctx, key, &cached); err == nil && inUse(&cached) {
		return ctrl.Result{}, nil
	}
	err = r.APIReader.Get(ctx, key, &c)
	switch {
	case err == nil && inUse(&c):
		return ctrl.Result{}, nil // still in use
	case err != nil && !apierrors.IsNotFound(err):
		return ctrl.Result{}, fmt.Errorf("reading canary %s: %w", canaryName, err)
	}
	// A Canary that still exists was retargeted: its old target and primary go, and the
	// objects it adopted for the old apex are given back, but those named for its current
	// apex (the same one when spec.service.name is set) are still its own and in use.
	var keep func(string) bool
	if err == nil && c.DeletionTimestamp.IsZero() {
		apex, primary, canary := c.GetServiceNames()
		keep = func(name string) bool { return name == apex || name == primary || name == canary }
	}

	// 1. The target gets its pods back and loses Herald's marks.
	targetName := strings.TrimSuffix(req.Name, contract.PrimarySuffix)
	target, _ := workloads.New(primary.Kind())
	found, err := rl.get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: targetName}, target.Object())
	if err != nil {
		return ctrl.Result{}, err
	}
	if found && target.Object().GetLabels()[contract.LabelCanary] == canaryName {
		replicas := int32(1)
		if n := primary.Replicas(); n != nil && *n > 0 {
			replicas = *n
		}
		if v := target.Object().GetAnnotations()[contract.AnnotationDesiredReplicas]; v != "" {
			if _, err := fmt.Sscan(v, &replicas); err != nil || replicas < 1 {
				replicas = 1
			}
		}
		changed := target.Copy()
		changed.Release(true, replicas)
		if err := r.Client.Patch(ctx, changed.Object(), client.MergeFrom(target.Object())); err != nil {
			return ctrl.Result{}, fmt.Errorf("giving %s %s its pods back: %w", strings.ToLower(target.Kind()), targetName, err)
		}
		log.Info("Canary gone: the target gets its pods back before the primary goes", "kind", target.Kind(), "replicas", replicas)
		r.Events.Eventf(changed.Object(), corev1.EventTypeNormal, "Released",
			"Canary %s is gone: %s.%s gets its pods back; its primary goes once they serve", canaryName, targetName, req.Namespace)
		return ctrl.Result{RequeueAfter: r.Options.PodPollInterval}, nil
	}

	// 2. Wait until it serves: the primary keeps the users until then.
	if found {
		if t := target.Ready(100, time.Time{}, 0, r.Now()); !t.Ready {
			log.V(1).Info("Waiting for the released target to serve before the primary goes", "reason", t.Reason)
			return ctrl.Result{RequeueAfter: r.Options.PodPollInterval}, nil
		}
	}

	// 3. The user's objects as they were before the Canary; configs untracked.
	label, value := "", ""
	if found {
		label, value, _ = contract.SelectorLabel(target.Selector(), target.Template().Labels, r.Options.SelectorLabels)
	}
	if err := rl.restoreAdopted(ctx, req.Namespace, canaryName, label, value, keep); err != nil {
		return ctrl.Result{}, err
	}
	if found {
		p := &pass{r: r, c: &flaggerv1.Canary{}, log: log}
		p.c.Namespace = req.Namespace
		for _, ref := range contract.Refs(&target.Template().Spec) {
			var obj client.Object = &corev1.ConfigMap{}
			if ref.Kind == contract.Secret {
				obj = &corev1.Secret{}
			}
			if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: ref.Name}, obj); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return ctrl.Result{}, fmt.Errorf("reading %s: %w", ref.Key(), err)
			}
			if err := p.untrack(ctx, obj); err != nil {
				return ctrl.Result{}, err
			}
		}
	}

	// 4. The primary goes, and what only it needed with it (owner references).
	if err := r.Client.Delete(ctx, primary.Object(), client.PropagationPolicy("Background")); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("deleting %s %s: %w", strings.ToLower(primary.Kind()), req.Name, err)
	}
	r.Metrics.Forget(targetName, targetName, req.Namespace)
	log.Info("Canary gone: target released, primary deleted")
	return ctrl.Result{}, nil
}

// restoreAdopted puts the user's objects the Canary adopted back as they were before it: the
// apex Service (selecting the target's pods again), VirtualServices, DestinationRules and
// Gateway API routes; but not those keep names (nil keeps none).
func (rl *releaser) restoreAdopted(ctx context.Context, namespace, canaryName, label, value string, keep func(string) bool) error {
	r := rl.r
	if err := rl.restoreServices(ctx, namespace, canaryName, label, value, keep); err != nil {
		return err
	}
	if r.Options.WatchIstio {
		if err := (&router.Istio{Client: r.Client}).Release(ctx, namespace, canaryName, keep); err != nil {
			return err
		}
	}
	if len(r.Options.OwnedRoutes) > 0 { // the cluster serves the Gateway API's routes
		if err := (&router.GatewayAPI{Client: r.Client}).Release(ctx, namespace, canaryName, keep); err != nil {
			return err
		}
	}
	return nil
}

// primary finds the primary workload named key, whatever its kind.
func (rl *releaser) primary(ctx context.Context, key types.NamespacedName) (workloads.Workload, error) {
	for _, kind := range workloads.Kinds {
		w, _ := workloads.New(kind)
		found, err := rl.get(ctx, key, w.Object())
		if err != nil {
			return nil, err
		}
		if found && w.Object().GetLabels()[contract.LabelPrimaryOf] != "" {
			return w, nil
		}
	}
	return nil, nil
}

func (rl *releaser) get(ctx context.Context, key types.NamespacedName, obj client.Object) (bool, error) {
	err := rl.r.Client.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s %s: %w", kindOf(obj), key.Name, err)
	}
	return true, nil
}

// restoreServices puts back the Services of namespace that canary adopted. A selector recorded
// while it already pointed at the primary (an apex an earlier Herald version took over without a
// record) is pointed at the target's pods again.
func (rl *releaser) restoreServices(ctx context.Context, namespace, canary, label, value string, keep func(string) bool) error {
	var list corev1.ServiceList
	if err := rl.r.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{contract.LabelAdoptedBy: canary}); err != nil {
		return fmt.Errorf("listing adopted services: %w", err)
	}
	for i := range list.Items {
		svc := &list.Items[i]
		if keep != nil && keep(svc.Name) {
			continue
		}
		var shape serviceShape
		if _, err := adopt.Restore(svc, &shape); err != nil {
			return err
		}
		if label != "" && shape.Selector[label] == contract.PrimaryName(value) {
			shape.Selector[label] = value
		}
		svc.Spec.Selector, svc.Spec.TrafficDistribution = shape.Selector, shape.TrafficDistribution
		if len(shape.Ports) > 0 {
			svc.Spec.Ports = mergePorts(svc.Spec.Ports, shape.Ports)
		}
		if err := rl.r.Client.Update(ctx, svc); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("putting service %s back: %w", svc.Name, err)
		}
		ctrl.LoggerFrom(ctx).Info("Service put back as it was before the Canary", "service", svc.Name)
	}
	return nil
}

// dropLegacyFinalizer removes the finalizer earlier Herald versions put on every Canary, and
// Flagger's (revertOnDeletion), which no one would remove once Herald has replaced Flagger.
func (r *Reconciler) dropLegacyFinalizer(ctx context.Context, c *flaggerv1.Canary) error {
	if !controllerutil.ContainsFinalizer(c, contract.Finalizer) && !controllerutil.ContainsFinalizer(c, contract.FlaggerFinalizer) {
		return nil
	}
	patch := client.MergeFrom(c.DeepCopy())
	controllerutil.RemoveFinalizer(c, contract.Finalizer)
	controllerutil.RemoveFinalizer(c, contract.FlaggerFinalizer)
	if err := r.Client.Patch(ctx, c, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of an earlier Herald: %w", err)
	}
	return nil
}

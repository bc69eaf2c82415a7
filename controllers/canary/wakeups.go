package canary

import (
	"context"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/workloads"
)

// Work proportional to change is only provable if it is known what woke each pass:
// herald_canary_wakeups_total{source} counts the requests each watch puts on the queue (before
// the queue merges those for a Canary already waiting), beside controller-runtime's count of
// reconciles, which also runs timers and retries.

// counted wraps h so that every request it adds to the queue counts as a wakeup from source.
func counted[T any](source string, inc func(string), h handler.TypedEventHandler[T, reconcile.Request]) handler.TypedEventHandler[T, reconcile.Request] {
	return &countingHandler[T]{source: source, inc: inc, h: h}
}

type countingHandler[T any] struct {
	source string
	inc    func(string)
	h      handler.TypedEventHandler[T, reconcile.Request]
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// wrap keeps the queue's kind: controller-runtime's handlers give initial-list events a low
// priority only when they see a priority queue, which is what makes a restart with many
// Canaries serve fresh events first.
func (c *countingHandler[T]) wrap(q queue) queue {
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		return &countingPriorityQueue{PriorityQueue: pq, count: c.count}
	}
	return &countingQueue{TypedRateLimitingInterface: q, count: c.count}
}

func (c *countingHandler[T]) count(n int) {
	for range n {
		c.inc(c.source)
	}
}

func (c *countingHandler[T]) Create(ctx context.Context, e event.TypedCreateEvent[T], q queue) {
	c.h.Create(ctx, e, c.wrap(q))
}

func (c *countingHandler[T]) Update(ctx context.Context, e event.TypedUpdateEvent[T], q queue) {
	c.h.Update(ctx, e, c.wrap(q))
}

func (c *countingHandler[T]) Delete(ctx context.Context, e event.TypedDeleteEvent[T], q queue) {
	c.h.Delete(ctx, e, c.wrap(q))
}

func (c *countingHandler[T]) Generic(ctx context.Context, e event.TypedGenericEvent[T], q queue) {
	c.h.Generic(ctx, e, c.wrap(q))
}

type countingQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	count func(int)
}

func (q *countingQueue) Add(r reconcile.Request) {
	q.count(1)
	q.TypedRateLimitingInterface.Add(r)
}

type countingPriorityQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
	count func(int)
}

func (q *countingPriorityQueue) Add(r reconcile.Request) {
	q.count(1)
	q.PriorityQueue.Add(r)
}

func (q *countingPriorityQueue) AddWithOpts(o priorityqueue.AddOpts, items ...reconcile.Request) {
	q.count(len(items))
	q.PriorityQueue.AddWithOpts(o, items...)
}

// workloadChanged lets through the workload updates that can change a decision
// (workloads.ProgressChanged): most status updates of a rollout only move counts no pass reads.
func workloadChanged() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool { return workloads.ProgressChanged(e.ObjectOld, e.ObjectNew) },
	}
}

// notCreated drops creation events, for the objects only Herald creates (primaries, Services):
// the pass that created one goes on by itself, and at start-up every Canary is queued by its
// own creation event anyway. Changes and deletions by others still wake the Canary. Should
// someone else create a primary a Canary waits for, or a broken watch's relist bring a primary
// created and ready meanwhile as one creation, primaryPoll's timer finds it.
func notCreated() predicate.Funcs {
	return predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }}
}

// readsTargetStatus is false while c's passes read nothing of its target's status: the
// target waits, scaled to zero, for a new revision (a spec change, which always wakes). A
// Failed Canary whose users were handed to the canary (status.canaryWeight > 0) still reads it:
// it hands them back should the canary's pods go.
func readsTargetStatus(c *flaggerv1.Canary) bool {
	switch c.Status.Phase {
	case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseFailed:
		return c.Status.CanaryWeight > 0
	}
	return true
}

// watchesTarget reports whether c's passes read its target's status: not while it waits for its
// turn to initialise; else as its last pass left it, or (no pass since start-up) as the cached
// status says.
func (r *Reconciler) watchesTarget(c flaggerv1.Canary) bool {
	if r.pace.isQueued(types.NamespacedName{Namespace: c.Namespace, Name: c.Name}) {
		return false // it comes back at its turn to initialise, and reads the target then
	}
	if v, ok := r.readsTarget.Load(types.NamespacedName{Namespace: c.Namespace, Name: c.Name}); ok {
		return v.(bool)
	}
	return readsTargetStatus(&c)
}

// statusWatchedBy lets a status-only update of a target through only when watching says a
// Canary of it is in a phase that reads its status. A Canary whose new phase the cache does not
// show yet misses the update and is woken by its own timer instead.
func statusWatchedBy(watching func(client.Object) bool) predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			if e.ObjectOld == nil || e.ObjectNew == nil || workloads.MetadataChanged(e.ObjectOld, e.ObjectNew) {
				return true
			}
			return watching(e.ObjectNew)
		},
	}
}

// canaryLogs gives each pass's logger the keys controller-runtime gives a controller built
// with For (which Watches alone cannot tell it): the controller's kind and the Canary.
func canaryLogs(base logr.Logger) func(*reconcile.Request) logr.Logger {
	log := base.WithValues("controller", "canary", "controllerGroup", flaggerv1.GroupVersion.Group, "controllerKind", "Canary")
	return func(req *reconcile.Request) logr.Logger {
		if req == nil {
			return log
		}
		return log.WithValues("Canary", klog.KRef(req.Namespace, req.Name), "namespace", req.Namespace, "name", req.Name)
	}
}

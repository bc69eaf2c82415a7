package canary

import (
	"context"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/herald-rollouts/herald/controllers/workloads"
)

// Work proportional to change is only provable if it is known what woke each pass:
// herald_canary_wakeups_total{source} counts the requests each watch puts on the queue, and
// controller_runtime_reconcile_total less their sum is what timers and retries ran.

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

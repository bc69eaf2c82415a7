/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package hooks

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/hookwire"
)

// Defaults of an EventPoster.
const (
	DefaultEventWorkers   = 4
	DefaultEventQueue     = 256
	DefaultEventPerCanary = 32
	// DefaultEventMaxTimeout caps one event post, retries included: events are
	// notifications, and a dead endpoint must not hold a worker for long.
	DefaultEventMaxTimeout = 10 * time.Second
	// DefaultEventMaxRetries caps an event hook's retries.
	DefaultEventMaxRetries = 1
)

// EventPosterOptions size an EventPoster; zero values take the defaults.
type EventPosterOptions struct {
	// Workers post at once (Herald's -event-hook-workers).
	Workers int
	// QueueSize bounds the events waiting for a worker, all Canaries together.
	QueueSize int
	// PerCanary bounds the events of one Canary queued or being posted, so that a Canary
	// with hundreds of event hooks cannot take the whole queue.
	PerCanary int
	// MaxTimeout caps one post, its retries included.
	MaxTimeout time.Duration
	// MaxRetries caps a hook's retries (negative: none).
	MaxRetries int
}

var (
	eventHookPosts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_event_hooks_total",
		Help: "Event hook posts by result: ok, failed, or dropped (the queue, or the Canary's share of it, was full).",
	}, []string{"result"})
	eventHooksDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_event_hooks_dropped_total",
		Help: "Event hook posts dropped without an attempt because the queue, or the Canary's share of it, was full.",
	})
	registerEventMetrics sync.Once
)

// EventPoster posts Canary events to event hooks from a bounded pool of workers with a
// bounded queue, instead of a goroutine per event per hook: Post never blocks, and what
// does not fit is dropped and counted (herald_event_hooks_dropped_total). Add it to the
// manager as a Runnable.
type EventPoster struct {
	caller *Caller
	log    logr.Logger
	opts   EventPosterOptions
	queue  chan eventJob

	mu        sync.Mutex
	perCanary map[string]int
}

type eventJob struct {
	hook      flaggerv1.CanaryWebhook
	payload   hookwire.Payload
	eventType string
	message   string
	at        time.Time
}

// NewEventPoster returns an EventPoster that posts through caller.
func NewEventPoster(caller *Caller, log logr.Logger, o EventPosterOptions) *EventPoster {
	registerEventMetrics.Do(func() { ctrlmetrics.Registry.MustRegister(eventHookPosts, eventHooksDropped) })
	if o.Workers <= 0 {
		o.Workers = DefaultEventWorkers
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultEventQueue
	}
	if o.PerCanary <= 0 {
		o.PerCanary = DefaultEventPerCanary
	}
	if o.MaxTimeout <= 0 {
		o.MaxTimeout = DefaultEventMaxTimeout
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultEventMaxRetries
	}
	if caller == nil {
		caller = &Caller{}
	}
	return &EventPoster{caller: caller, log: log, opts: o, queue: make(chan eventJob, o.QueueSize), perCanary: map[string]int{}}
}

// Post queues the event for one event hook (see Caller.Event for the payload) and returns
// at once; false when it was dropped.
func (e *EventPoster) Post(hook flaggerv1.CanaryWebhook, p hookwire.Payload, eventType, message string, at time.Time) bool {
	key := p.Namespace + "/" + p.Name
	e.mu.Lock()
	if e.perCanary[key] >= e.opts.PerCanary {
		e.mu.Unlock()
		e.dropped()
		return false
	}
	select {
	case e.queue <- eventJob{hook: hook, payload: p, eventType: eventType, message: message, at: at}:
		e.perCanary[key]++
		e.mu.Unlock()
		return true
	default:
		e.mu.Unlock()
		e.dropped()
		return false
	}
}

func (e *EventPoster) dropped() {
	eventHooksDropped.Inc()
	eventHookPosts.WithLabelValues("dropped").Inc()
}

// NeedLeaderElection reports true: events are those of the leader's reconciles.
func (e *EventPoster) NeedLeaderElection() bool { return true }

// Start posts until ctx is done; what is still queued then is dropped.
func (e *EventPoster) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range e.opts.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-e.queue:
					e.post(ctx, j)
				}
			}
		})
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

func (e *EventPoster) post(ctx context.Context, j eventJob) {
	key := j.payload.Namespace + "/" + j.payload.Name
	defer func() {
		e.mu.Lock()
		if e.perCanary[key]--; e.perCanary[key] <= 0 {
			delete(e.perCanary, key)
		}
		e.mu.Unlock()
	}()
	log := e.log.WithValues("canary", j.payload.Name, "namespace", j.payload.Namespace, "hook", j.hook.Name)
	defer func() {
		if p := recover(); p != nil {
			eventHookPosts.WithLabelValues("failed").Inc()
			log.Error(fmt.Errorf("panic: %v", p), "Event hook post panicked", "stack", string(debug.Stack()))
		}
	}()
	hook := j.hook
	hook.Timeout = min(hook.GetTimeout(), e.opts.MaxTimeout).String()
	hook.Retries = min(max(hook.Retries, 0), max(e.opts.MaxRetries, 0))
	cctx, cancel := context.WithTimeout(ctx, e.opts.MaxTimeout)
	defer cancel()
	if err := e.caller.Event(cctx, hook, j.payload, j.eventType, j.message, j.at); err != nil {
		eventHookPosts.WithLabelValues("failed").Inc()
		log.Info("Event hook failed", "error", err.Error())
		return
	}
	eventHookPosts.WithLabelValues("ok").Inc()
}

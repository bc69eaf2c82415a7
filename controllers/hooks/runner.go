/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package hooks

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/hookwire"
)

// Defaults of a Runner.
const (
	DefaultRunnerWorkers = 16
	DefaultRunnerQueue   = 256
	DefaultResultTTL     = 15 * time.Minute
	DefaultMaxResults    = 4096
	DefaultMaxRetries    = 3
	// DefaultWakeups is the buffer of the Events channel.
	DefaultWakeups = 1024
)

// ErrBusy is returned by Runner.Do when every worker is busy and the queue is full: nothing
// was recorded, ask again later.
var ErrBusy = errors.New("too many hook calls are waiting: the call was not queued")

// ErrStopped is returned by Runner.Do once the Runner has stopped.
var ErrStopped = errors.New("the hook runner has stopped")

// Key identifies one hook call: the same key asked again gives the same call's state or
// result, never a second call. Step is the caller's name for the analysis step the call
// belongs to (for example the revision, the phase and the iteration): a new step makes a
// new call.
type Key struct {
	Namespace, Canary, Step, Hook string
}

func (k Key) String() string {
	return k.Namespace + "/" + k.Canary + " step " + k.Step + " hook " + k.Hook
}

// Result is the state of a hook call.
type Result struct {
	// Done is false while the call waits for a worker or runs.
	Done bool
	// Err is the call's failure (an *Error, or ErrStopped) once Done; nil when it succeeded.
	Err error
	// Queued, Started and Finished are when the call was asked for, began and ended.
	Queued, Started, Finished time.Time
}

// RunnerOptions size a Runner; zero values take the defaults.
type RunnerOptions struct {
	// Workers is how many calls run at once (Herald's -hook-workers).
	Workers int
	// QueueSize is how many calls may wait for a worker; beyond it Do answers ErrBusy.
	QueueSize int
	// ResultTTL is how long a finished call's result is kept.
	ResultTTL time.Duration
	// MaxResults is how many finished results are kept; the oldest go first.
	MaxResults int
	// MaxRetries caps a hook's retries.
	MaxRetries int
	// Wakeups is the buffer of the Events channel.
	Wakeups int
	// OnDone, if set, is called (from a worker) when a call finishes.
	OnDone func(Key, Result)
	// Now is the clock of the results' times; time.Now when nil (tests pin it to the
	// controller's clock, which judges in which interval a call finished).
	Now func() time.Time
}

// Runner runs hook calls off the reconcile workers: a Canary's Reconcile asks for a call
// with Do and returns at once; a bounded pool of workers makes the call, with its timeout
// and total duration capped by what the caller passes (the analysis interval) and its
// retries capped; when it finishes, the Runner signals on Events (for source.Channel) and
// calls OnDone, and the next Reconcile reads the result with Do. A hook that hangs for
// hours holds one worker for one capped call, and delays only its own Canary.
//
// Add the Runner to the manager (it is a Runnable that needs leader election, like the
// controllers that call it); calls asked for before Start wait in the queue.
type Runner struct {
	caller *Caller
	opts   RunnerOptions
	log    logr.Logger
	now    func() time.Time

	queue  chan *call
	events chan event.GenericEvent

	mu       sync.Mutex
	active   map[Key]*call // queued or running
	done     map[Key]*list.Element
	finished *list.List // of *call, oldest finish first
	stopped  bool
}

type call struct {
	key     Key
	hook    flaggerv1.CanaryWebhook
	payload hookwire.Payload
	limit   time.Duration
	result  Result
}

var (
	hookCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_hook_calls_total",
		Help: "Analysis hook calls made by the hook runner, by result (ok, failed), and those refused because the queue was full (busy).",
	}, []string{"result"})
	hookCallsRunning = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_hook_calls_in_flight",
		Help: "Analysis hook calls queued or running in the hook runner.",
	})
	hookWakeupsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_hook_wakeups_dropped_total",
		Help: "Finished hook calls whose wake-up event was dropped because the channel was full (the Canary is reconciled at its next requeue instead).",
	})
	registerRunnerMetrics sync.Once
)

// NewRunner returns a Runner that calls hooks through caller.
func NewRunner(caller *Caller, log logr.Logger, o RunnerOptions) *Runner {
	registerRunnerMetrics.Do(func() {
		ctrlmetrics.Registry.MustRegister(hookCalls, hookCallsRunning, hookWakeupsDropped)
	})
	if o.Workers <= 0 {
		o.Workers = DefaultRunnerWorkers
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultRunnerQueue
	}
	if o.ResultTTL <= 0 {
		o.ResultTTL = DefaultResultTTL
	}
	if o.MaxResults <= 0 {
		o.MaxResults = DefaultMaxResults
	}
	if o.MaxRetries < 0 {
		o.MaxRetries = 0
	} else if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.Wakeups <= 0 {
		o.Wakeups = DefaultWakeups
	}
	if caller == nil {
		caller = &Caller{}
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Runner{
		caller:   caller,
		opts:     o,
		log:      log,
		now:      now,
		queue:    make(chan *call, o.QueueSize),
		events:   make(chan event.GenericEvent, o.Wakeups),
		active:   map[Key]*call{},
		done:     map[Key]*list.Element{},
		finished: list.New(),
	}
}

// Events signals each finished call with a GenericEvent whose object is the Canary
// (namespace and name only): give it to source.Channel so that the Canary is reconciled
// at once. A wake-up is dropped (and counted) when the channel is full, so the reconciler
// should also requeue after the call's limit.
func (r *Runner) Events() <-chan event.GenericEvent { return r.events }

// Do returns the state of the call key, starting it if it is not known: hook is POSTed p
// by a worker, each attempt bounded by min(hook timeout, limit), all attempts together by
// limit, with at most min(hook retries, MaxRetries) retries. A limit of zero or less means
// the hook's own timeout. The same key asked again returns the queued, running or finished
// call (hook, p and limit are then ignored) until its result expires. ErrBusy means the
// queue is full and nothing was recorded.
func (r *Runner) Do(key Key, hook flaggerv1.CanaryWebhook, p hookwire.Payload, limit time.Duration) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.active[key]; ok {
		return c.result, nil
	}
	if el, ok := r.done[key]; ok {
		c := el.Value.(*call)
		if r.now().Sub(c.result.Finished) < r.opts.ResultTTL {
			return c.result, nil
		}
		r.finished.Remove(el)
		delete(r.done, key)
	}
	if r.stopped {
		return Result{}, ErrStopped
	}
	if limit <= 0 {
		limit = hook.GetTimeout()
	}
	if p.Metadata == nil {
		p.Metadata = hook.Metadata
	}
	c := &call{key: key, hook: hook, payload: p, limit: limit, result: Result{Queued: r.now()}}
	select {
	case r.queue <- c:
	default:
		hookCalls.WithLabelValues("busy").Inc()
		return Result{}, fmt.Errorf("%w (%d waiting, %d running at most)", ErrBusy, r.opts.QueueSize, r.opts.Workers)
	}
	r.active[key] = c
	hookCallsRunning.Inc()
	return c.result, nil
}

// Lookup returns the state of the call key without starting it; false when it is not known
// (never asked for, or its result expired).
func (r *Runner) Lookup(key Key) (Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.active[key]; ok {
		return c.result, true
	}
	if el, ok := r.done[key]; ok {
		if c := el.Value.(*call); r.now().Sub(c.result.Finished) < r.opts.ResultTTL {
			return c.result, true
		}
	}
	return Result{}, false
}

// Forget drops the finished results of a Canary (when it is deleted); its queued and
// running calls finish and are dropped then.
func (r *Runner) Forget(namespace, canary string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, el := range r.done {
		if k.Namespace == namespace && k.Canary == canary {
			r.finished.Remove(el)
			delete(r.done, k)
		}
	}
}

// Len returns the number of queued or running calls and of finished results kept.
func (r *Runner) Len() (active, finished int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.active), r.finished.Len()
}

// NeedLeaderElection reports true: hook calls are made for the leader's reconciles only.
func (r *Runner) NeedLeaderElection() bool { return true }

// Start runs the workers until ctx is done, then cancels the calls in flight (they finish
// with the context's error) and returns once every worker has stopped. Do refuses new calls
// from then on.
func (r *Runner) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range r.opts.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case c := <-r.queue:
					r.run(ctx, c)
				}
			}
		})
	}
	<-ctx.Done()
	wg.Wait()
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	return nil
}

// run makes one call; a panic (a bug) fails the call, never the process.
func (r *Runner) run(ctx context.Context, c *call) {
	r.mu.Lock()
	c.result.Started = r.now()
	r.mu.Unlock()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("hook %q: the call failed unexpectedly: %v", c.hook.Name, p)
				r.log.Error(err, "Hook call panicked", "canary", c.key.Canary, "namespace", c.key.Namespace, "stack", string(debug.Stack()))
			}
		}()
		hook := c.hook
		hook.Timeout = min(hook.GetTimeout(), c.limit).String()
		hook.Retries = min(max(hook.Retries, 0), r.opts.MaxRetries)
		cctx, cancel := context.WithTimeout(ctx, c.limit)
		defer cancel()
		err = r.caller.Call(cctx, hook, c.payload)
		if err != nil && cctx.Err() != nil && ctx.Err() == nil {
			var e *Error
			if errors.As(err, &e) && errors.Is(e.Err, context.DeadlineExceeded) {
				e.Err = fmt.Errorf("no success within %s, the most a hook call may take in this analysis (its interval): %w", c.limit, context.DeadlineExceeded)
			}
		}
	}()
	result := hookCallResult(err)
	hookCalls.WithLabelValues(result).Inc()

	r.mu.Lock()
	c.result.Done, c.result.Err, c.result.Finished = true, err, r.now()
	res := c.result
	delete(r.active, c.key)
	hookCallsRunning.Dec()
	r.done[c.key] = r.finished.PushBack(c)
	for r.finished.Len() > r.opts.MaxResults {
		oldest := r.finished.Front()
		delete(r.done, oldest.Value.(*call).key)
		r.finished.Remove(oldest)
	}
	r.expireLocked()
	r.mu.Unlock()

	if r.opts.OnDone != nil {
		r.opts.OnDone(c.key, res)
	}
	wake := event.GenericEvent{Object: &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Namespace: c.key.Namespace, Name: c.key.Canary}}}
	select {
	case r.events <- wake:
	default:
		hookWakeupsDropped.Inc()
	}
}

// expireLocked drops finished results older than the TTL (the list is in finish order).
func (r *Runner) expireLocked() {
	now := r.now()
	for el := r.finished.Front(); el != nil; el = r.finished.Front() {
		c := el.Value.(*call)
		if now.Sub(c.result.Finished) < r.opts.ResultTTL {
			return
		}
		delete(r.done, c.key)
		r.finished.Remove(el)
	}
}

func hookCallResult(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

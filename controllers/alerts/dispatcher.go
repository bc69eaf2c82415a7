package alerts

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// Default size of the dispatcher. Alerts come a few per rollout, so a full queue means a chat
// service is down, and then dropping (and counting) is better than holding memory or the
// controller.
const (
	// DefaultWorkers resolve the providers of queued alerts, each from its own queue.
	DefaultWorkers = 4
	// DefaultQueueSize bounds each resolving worker's queue and each provider's queue.
	DefaultQueueSize = 64
	// DefaultDrainTimeout bounds the delivery of the alerts still queued when the Dispatcher
	// stops. Their Canaries' status is already written, so nothing would send them again (a
	// "promotion finished" lost to a Herald upgrade); a few seconds let them out without
	// holding a shutdown for long behind a dead chat service.
	DefaultDrainTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a provider's worker waits for work before it ends (the
	// next alert for that provider starts a new one), so deleted providers leave nothing
	// behind.
	DefaultIdleTimeout = 5 * time.Minute
)

var (
	alertsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_alerts_total",
		Help: "Alerts per provider type that were delivered (result sent) or given up on after retries (result failed).",
	}, []string{"provider", "result"})
	alertsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_alerts_dropped_total",
		Help: "Alerts per provider type dropped without an attempt: the provider's queue was full, or the drain timeout passed at shutdown.",
	}, []string{"provider"})
	registerOnce sync.Once
)

// Results of herald_alerts_total, and the provider label of alerts whose providers were not
// resolved (so their type is unknown): the provider could not be read, or the alert was
// dropped before it was looked up.
const (
	ResultSent         = "sent"
	ResultFailed       = "failed"
	ProviderUnresolved = "unresolved"
)

// Options size a Dispatcher; zero values take the defaults.
type Options struct {
	// Workers that resolve providers; one Canary's alerts always go to the same one.
	Workers int
	// QueueSize bounds each resolving worker's queue and each provider's queue.
	QueueSize int
	// DrainTimeout bounds the delivery of what is queued when the Dispatcher stops.
	DrainTimeout time.Duration
	// IdleTimeout ends a provider's worker that had nothing to send for that long.
	IdleTimeout time.Duration
}

// Dispatcher delivers alerts in the background, in two stages, so that a dead chat service
// delays and drops only its own alerts:
//
//   - Enqueue, which never blocks, puts an alert on one of a few bounded queues chosen by
//     Canary; the queue's worker reads the Canary's AlertProviders (quick API reads) and hands
//     the alert to each destination that wants it;
//   - each destination (an AlertProvider, or a global provider) has its own bounded queue and
//     worker, which posts with retries. A destination that times out fills only its own queue.
//
// The alerts of one Canary reach each destination in order.
type Dispatcher struct {
	sender *Sender
	log    logr.Logger
	opts   Options
	intake []chan job
	// stopped is set when Start returns; Enqueue refuses alerts from then on.
	stopped atomic.Bool

	mu      sync.Mutex
	outlets map[string]*outlet // by destination, see outletKey
	// sendCtx bounds every delivery: it outlives Start's context by the drain timeout.
	sendCtx context.Context
	// draining is closed once the resolving workers are done at shutdown: from then on no
	// alert is added to an outlet, and each outlet's worker ends when its queue is empty.
	draining chan struct{}
	outletWG sync.WaitGroup
}

type job struct {
	alerts []flaggerv1.CanaryAlert
	msg    Message
}

// outlet is one destination's queue; one worker serves it.
type outlet struct {
	queue chan delivery
}

type delivery struct {
	dest Destination
	msg  Message
}

// outletKey identifies a destination: its type and name (two global providers share the
// name "global").
func outletKey(d Destination) string { return d.Type + " " + d.Name }

// NewDispatcher returns a Dispatcher that sends through sender. It registers Herald's alert
// counters on controller-runtime's metrics registry (once per process). Run it with Start,
// and stop it after the controllers that enqueue (not as a manager runnable: the manager
// stops those first), so that their last alerts are still sent.
func NewDispatcher(sender *Sender, log logr.Logger, o Options) *Dispatcher {
	registerOnce.Do(func() { ctrlmetrics.Registry.MustRegister(alertsTotal, alertsDropped) })
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	d := &Dispatcher{
		sender:   sender,
		log:      log,
		opts:     o,
		intake:   make([]chan job, o.Workers),
		outlets:  map[string]*outlet{},
		draining: make(chan struct{}),
	}
	for i := range d.intake {
		d.intake[i] = make(chan job, o.QueueSize)
	}
	return d
}

// Enqueue hands m, an alert of Canary c, to the workers and returns at once. It reports
// false when the alert was dropped because its queue is full (logged and counted in
// herald_alerts_dropped_total), or because the Dispatcher has stopped. A nil Dispatcher
// (alerts disabled) drops silently. An alert dropped later, by a provider whose queue is
// full, is logged and counted the same way.
func (d *Dispatcher) Enqueue(c *flaggerv1.Canary, m Message) bool {
	if d == nil {
		return false
	}
	if d.stopped.Load() {
		alertsDropped.WithLabelValues(ProviderUnresolved).Inc()
		d.log.Error(errors.New("the alert dispatcher has stopped"), "Alert dropped", "canary", c.Name, "namespace", c.Namespace, "message", m.Text)
		return false
	}
	var alerts []flaggerv1.CanaryAlert
	if a := c.GetAnalysis(); a != nil {
		// A copy: the worker reads it later, while the caller goes on with the Canary.
		alerts = slices.Clone(a.Alerts)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(c.Namespace + "/" + c.Name))
	q := d.intake[h.Sum32()%uint32(len(d.intake))]
	select {
	case q <- job{alerts: alerts, msg: m}:
		return true
	default:
		alertsDropped.WithLabelValues(ProviderUnresolved).Inc()
		d.log.Error(errors.New("the delivery queue is full"), "Alert dropped", "canary", c.Name, "namespace", c.Namespace, "message", m.Text)
		return false
	}
}

// Start runs the workers until ctx is done, then drains: the alerts being sent and those
// queued (also while draining) are still delivered, for at most the drain timeout. Only
// what is left then is given up, logged and counted as dropped. Start returns once the
// workers have stopped; Enqueue refuses alerts from then on. Call it once.
func (d *Dispatcher) Start(ctx context.Context) error {
	// Sends outlive ctx: a shutdown must not abort the POST in flight.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	d.mu.Lock()
	d.sendCtx = sendCtx
	d.mu.Unlock()

	var resolvers sync.WaitGroup
	for _, q := range d.intake {
		resolvers.Go(func() { d.resolveLoop(ctx, sendCtx, q) })
	}
	<-ctx.Done()
	deadline := time.AfterFunc(d.opts.DrainTimeout, cancelSends)
	defer deadline.Stop()
	resolvers.Wait()
	// No resolver adds outlets any more, so the wait group only counts down from here.
	close(d.draining)
	d.outletWG.Wait()
	d.stopped.Store(true)
	d.countLeftovers()
	return nil
}

// resolveLoop serves one intake queue: it looks up each alert's destinations and hands the
// alert to their outlets. At shutdown it empties its queue first.
func (d *Dispatcher) resolveLoop(ctx, sendCtx context.Context, q chan job) {
	for sendCtx.Err() == nil { // past the drain timeout, what is queued is left
		select {
		case j := <-q:
			d.fanOut(sendCtx, j)
		case <-ctx.Done():
			for sendCtx.Err() == nil {
				select {
				case j := <-q:
					d.fanOut(sendCtx, j)
				default:
					return
				}
			}
			return
		}
	}
}

// fanOut resolves the destinations of one alert and queues it on each one's outlet.
func (d *Dispatcher) fanOut(ctx context.Context, j job) {
	log := d.log.WithValues("canary", j.msg.Canary, "namespace", j.msg.Namespace)
	dests, err := d.sender.Destinations(ctx, j.msg.Namespace, j.alerts, j.msg.Severity)
	if err != nil {
		// One line per provider that could not be resolved.
		var joined interface{ Unwrap() []error }
		errs := []error{err}
		if errors.As(err, &joined) {
			errs = joined.Unwrap()
		}
		for _, e := range errs {
			alertsTotal.WithLabelValues(ProviderUnresolved, ResultFailed).Inc()
			log.Error(e, "Alert not sent")
		}
	}
	for _, dest := range dests {
		if !d.offer(delivery{dest: dest, msg: j.msg}) {
			alertsDropped.WithLabelValues(dest.Type).Inc()
			log.Error(errors.New("the provider's delivery queue is full"), "Alert dropped", "provider", dest.Name, "type", dest.Type, "message", j.msg.Text)
		}
	}
}

// offer queues dl on its destination's outlet, starting the outlet's worker if there is
// none; false when the outlet's queue is full.
func (d *Dispatcher) offer(dl delivery) bool {
	key := outletKey(dl.dest)
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.outlets[key]
	if !ok {
		o = &outlet{queue: make(chan delivery, d.opts.QueueSize)}
		d.outlets[key] = o
		sendCtx := d.sendCtx
		d.outletWG.Go(func() { d.serve(sendCtx, key, o) })
	}
	select {
	case o.queue <- dl:
		return true
	default:
		return false
	}
}

// serve delivers one outlet's alerts in order. It ends when the outlet stays idle (removing
// it, under the lock that offer takes, so no alert is added to an outlet nobody serves),
// when its queue is empty at shutdown, or at the drain timeout.
func (d *Dispatcher) serve(sendCtx context.Context, key string, o *outlet) {
	idle := time.NewTimer(d.opts.IdleTimeout)
	defer idle.Stop()
	for sendCtx.Err() == nil {
		select {
		case dl := <-o.queue:
			d.deliver(sendCtx, dl)
			idle.Reset(d.opts.IdleTimeout)
		case <-idle.C:
			d.mu.Lock()
			if len(o.queue) == 0 {
				delete(d.outlets, key)
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			idle.Reset(d.opts.IdleTimeout)
		case <-d.draining:
			for sendCtx.Err() == nil {
				select {
				case dl := <-o.queue:
					d.deliver(sendCtx, dl)
				default:
					return
				}
			}
			return
		case <-sendCtx.Done():
			return
		}
	}
}

// deliver posts one alert to one destination and records the outcome.
func (d *Dispatcher) deliver(ctx context.Context, dl delivery) {
	log := d.log.WithValues("canary", dl.msg.Canary, "namespace", dl.msg.Namespace, "provider", dl.dest.Name, "type", dl.dest.Type)
	if err := d.sender.Send(ctx, dl.dest, dl.msg); err != nil {
		alertsTotal.WithLabelValues(dl.dest.Type, ResultFailed).Inc()
		log.Error(err, "Alert not delivered")
		return
	}
	alertsTotal.WithLabelValues(dl.dest.Type, ResultSent).Inc()
	log.V(1).Info("Alert delivered", "message", dl.msg.Text)
}

// countLeftovers logs and counts, once the workers have stopped, the alerts that were never
// tried.
func (d *Dispatcher) countLeftovers() {
	pending := 0
	for _, q := range d.intake {
		n := len(q)
		pending += n
		alertsDropped.WithLabelValues(ProviderUnresolved).Add(float64(n))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.outlets {
		for len(o.queue) > 0 {
			dl := <-o.queue
			pending++
			alertsDropped.WithLabelValues(dl.dest.Type).Inc()
		}
	}
	if pending > 0 {
		d.log.Error(fmt.Errorf("not delivered within the drain timeout of %s", d.opts.DrainTimeout), "Stopping with alerts not sent", "pending", pending)
	}
}

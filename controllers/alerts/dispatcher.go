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

// Default size of the dispatcher: a few workers, each with a bounded queue. Alerts come a few
// per rollout, so a full queue means the chat services are down, and then dropping (and
// counting) is better than holding memory or the controller.
const (
	DefaultWorkers   = 4
	DefaultQueueSize = 64
)

// DefaultDrainTimeout bounds the delivery of the alerts still queued when the Dispatcher
// stops. Their Canaries' status is already written, so nothing would send them again (a
// "promotion finished" lost to a Herald upgrade); a few seconds let them out without holding
// a shutdown for long behind a dead chat service.
const DefaultDrainTimeout = 10 * time.Second

var (
	alertsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_alerts_total",
		Help: "Alerts per provider type that were delivered (result sent) or given up on after retries (result failed).",
	}, []string{"provider", "result"})
	alertsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_alerts_dropped_total",
		Help: "Alerts dropped without an attempt because the delivery queue was full.",
	})
	registerOnce sync.Once
)

// Results of herald_alerts_total, and the provider label of alerts whose provider could not
// be resolved (so its type is unknown).
const (
	ResultSent         = "sent"
	ResultFailed       = "failed"
	ProviderUnresolved = "unresolved"
)

// Options size a Dispatcher; zero values take the defaults.
type Options struct {
	Workers   int
	QueueSize int // per worker
	// DrainTimeout bounds the delivery of what is queued when the Dispatcher stops.
	DrainTimeout time.Duration
}

// Dispatcher delivers alerts in the background. The caller's Enqueue never blocks: alerts
// go to one of a few bounded queues, chosen by Canary, so the alerts of one Canary arrive in
// order; each queue has one worker that resolves the providers and sends with retries.
type Dispatcher struct {
	sender       *Sender
	log          logr.Logger
	queues       []chan job
	drainTimeout time.Duration
	stopped      atomic.Bool
}

type job struct {
	alerts []flaggerv1.CanaryAlert
	msg    Message
}

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
	d := &Dispatcher{sender: sender, log: log, queues: make([]chan job, o.Workers), drainTimeout: o.DrainTimeout}
	for i := range d.queues {
		d.queues[i] = make(chan job, o.QueueSize)
	}
	return d
}

// Enqueue hands m, an alert of Canary c, to the workers and returns at once. It reports
// false when the alert was dropped because its queue is full (logged and counted in
// herald_alerts_dropped_total), or because the Dispatcher has stopped. A nil Dispatcher
// (alerts disabled) drops silently.
func (d *Dispatcher) Enqueue(c *flaggerv1.Canary, m Message) bool {
	if d == nil {
		return false
	}
	if d.stopped.Load() {
		alertsDropped.Inc()
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
	q := d.queues[h.Sum32()%uint32(len(d.queues))]
	select {
	case q <- job{alerts: alerts, msg: m}:
		return true
	default:
		alertsDropped.Inc()
		d.log.Error(errors.New("the delivery queue is full"), "Alert dropped", "canary", c.Name, "namespace", c.Namespace, "message", m.Text)
		return false
	}
}

// Start runs the workers until ctx is done, then drains: the alert being sent and those
// queued (also while draining) are still delivered, for at most the drain timeout. Only
// what is left then is given up, logged and counted as dropped. Start returns once the
// workers have stopped; Enqueue refuses alerts from then on.
func (d *Dispatcher) Start(ctx context.Context) error {
	// Sends outlive ctx: a shutdown must not abort the POST in flight.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	var wg sync.WaitGroup
	for _, q := range d.queues {
		wg.Go(func() {
			for sendCtx.Err() == nil { // past the drain timeout, what is queued is left
				select {
				case j := <-q:
					d.deliver(sendCtx, j)
				case <-ctx.Done():
					for sendCtx.Err() == nil {
						select {
						case j := <-q:
							d.deliver(sendCtx, j)
						default:
							return
						}
					}
					return
				}
			}
		})
	}
	<-ctx.Done()
	deadline := time.AfterFunc(d.drainTimeout, cancelSends)
	defer deadline.Stop()
	wg.Wait()
	d.stopped.Store(true)
	pending := 0
	for _, q := range d.queues {
		pending += len(q)
	}
	if pending > 0 {
		alertsDropped.Add(float64(pending))
		d.log.Error(fmt.Errorf("not delivered within the drain timeout of %s", d.drainTimeout), "Stopping with alerts not sent", "pending", pending)
	}
	return nil
}

// deliver sends one alert to every destination that wants it.
func (d *Dispatcher) deliver(ctx context.Context, j job) {
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
		if err := d.sender.Send(ctx, dest, j.msg); err != nil {
			alertsTotal.WithLabelValues(dest.Type, ResultFailed).Inc()
			log.Error(err, "Alert not delivered", "provider", dest.Name, "type", dest.Type)
			continue
		}
		alertsTotal.WithLabelValues(dest.Type, ResultSent).Inc()
		log.V(1).Info("Alert delivered", "provider", dest.Name, "type", dest.Type, "message", j.msg.Text)
	}
}

package alerts

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"sync"

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
}

// Dispatcher delivers alerts in the background. The caller's Enqueue never blocks: alerts
// go to one of a few bounded queues, chosen by Canary, so the alerts of one Canary arrive in
// order; each queue has one worker that resolves the providers and sends with retries.
type Dispatcher struct {
	sender *Sender
	log    logr.Logger
	queues []chan job
}

type job struct {
	alerts []flaggerv1.CanaryAlert
	msg    Message
}

// NewDispatcher returns a Dispatcher that sends through sender. It registers Herald's alert
// counters on controller-runtime's metrics registry (once per process). Run it with Start,
// e.g. by adding it to the manager.
func NewDispatcher(sender *Sender, log logr.Logger, o Options) *Dispatcher {
	registerOnce.Do(func() { ctrlmetrics.Registry.MustRegister(alertsTotal, alertsDropped) })
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	d := &Dispatcher{sender: sender, log: log, queues: make([]chan job, o.Workers)}
	for i := range d.queues {
		d.queues[i] = make(chan job, o.QueueSize)
	}
	return d
}

// Enqueue hands m, an alert of Canary c, to the workers and returns at once. It reports
// false when the alert was dropped because its queue is full (logged and counted in
// herald_alerts_dropped_total). A nil Dispatcher (alerts disabled) drops silently.
func (d *Dispatcher) Enqueue(c *flaggerv1.Canary, m Message) bool {
	if d == nil {
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

// Start runs the workers until ctx is done; alerts still queued then are not sent.
func (d *Dispatcher) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, q := range d.queues {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-q:
					d.deliver(ctx, j)
				}
			}
		})
	}
	wg.Wait()
	pending := 0
	for _, q := range d.queues {
		pending += len(q)
	}
	if pending > 0 {
		d.log.Info("Stopping with alerts not sent", "pending", pending)
	}
	return nil
}

// NeedLeaderElection is false: only the leader's controller enqueues, and a follower's idle
// workers cost nothing.
func (d *Dispatcher) NeedLeaderElection() bool { return false }

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

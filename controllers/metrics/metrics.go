// Package metrics holds Herald's Prometheus collectors. Names and labels follow Flagger's
// (flagger_*), so dashboards and alerts written for Flagger keep working; Herald's own
// measurements use the herald_ prefix. Everything is registered on controller-runtime's
// registry and served by the manager's /metrics endpoint.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/version"
)

var info = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "flagger_info",
	Help: "Herald version and default mesh provider (Flagger-compatible name).",
}, []string{"version", "mesh_provider"})

// Register adds Herald's collectors to controller-runtime's registry. reader lists Canaries
// (an informer-backed cache in the manager) for flagger_canary_total, which is computed at
// scrape time so that it can never drift from the cluster.
func Register(reader client.Reader, meshProvider string) {
	info.WithLabelValues(version.Version, meshProvider).Set(1)
	ctrlmetrics.Registry.MustRegister(info, &canaryTotal{reader: reader})
	ctrlmetrics.Registry.MustRegister(collectors()...)
}

var canaryTotalDesc = prometheus.NewDesc("flagger_canary_total",
	"Number of canaries per namespace (Flagger-compatible name).", []string{"namespace"}, nil)

// canaryTotal counts Canaries per namespace from the cache on each scrape.
type canaryTotal struct{ reader client.Reader }

func (c *canaryTotal) Describe(ch chan<- *prometheus.Desc) { ch <- canaryTotalDesc }

func (c *canaryTotal) Collect(ch chan<- prometheus.Metric) {
	var list flaggerv1.CanaryList
	if err := c.reader.List(context.Background(), &list); err != nil {
		// A scrape must not fail because the cache is not synced yet; report nothing instead.
		ctrllog.Log.WithName("metrics").V(1).Info("Cannot list canaries for flagger_canary_total", "error", err.Error())
		return
	}
	perNamespace := map[string]int{}
	for i := range list.Items {
		perNamespace[list.Items[i].Namespace]++
	}
	for ns, n := range perNamespace {
		ch <- prometheus.MustNewConstMetric(canaryTotalDesc, prometheus.GaugeValue, float64(n), ns)
	}
}

// Label names of the per-Canary series. Like Flagger, "name" holds the Canary's
// targetRef.name, not the Canary's own name.
const (
	labelName      = "name"
	labelNamespace = "namespace"
	labelWorkload  = "workload"
	labelMetric    = "metric"
	labelStrategy  = "deployment_strategy"
	labelStatus    = "analysis_status"
	labelReason    = "reason"
)

// Analysis statuses of flagger_canary_successes_total and flagger_canary_failures_total.
const (
	AnalysisCompleted = "completed"
	AnalysisSkipped   = "skipped"
)

// Values of flagger_canary_status (Flagger's encoding).
const (
	StatusProgressing = 0
	StatusOther       = 1
	StatusFailed      = 2
)

// DetectionBuckets are the buckets of herald_detection_latency_seconds.
var DetectionBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

var (
	canaryStatus = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flagger_canary_status",
		Help: "Last phase of a canary: 0 Progressing, 2 Failed, 1 any other phase (Flagger-compatible).",
	}, []string{labelName, labelNamespace})

	canaryWeight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flagger_canary_weight",
		Help: "Traffic weight of the primary (<target>-primary) and canary (<target>) workloads (Flagger-compatible).",
	}, []string{labelWorkload, labelNamespace})

	canaryMetricAnalysis = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flagger_canary_metric_analysis",
		Help: "Last value of each analysis metric of a canary (Flagger-compatible).",
	}, []string{labelName, labelNamespace, labelMetric})

	canaryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "flagger_canary_duration_seconds",
		Help:    "Time spent in one analysis step of a canary (Flagger-compatible).",
		Buckets: prometheus.DefBuckets,
	}, []string{labelName, labelNamespace})

	canarySuccesses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagger_canary_successes_total",
		Help: "Runs of a canary that ended in promotion (Flagger-compatible).",
	}, []string{labelName, labelNamespace, labelStrategy, labelStatus})

	canaryFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagger_canary_failures_total",
		Help: "Runs of a canary that ended in rollback (Flagger-compatible).",
	}, []string{labelName, labelNamespace, labelStrategy, labelStatus})

	detectionLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "herald_detection_latency_seconds",
		Help:    "Time from a workload's generation change to the controller noticing the new revision.",
		Buckets: DetectionBuckets,
	}, []string{labelNamespace})

	reconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_reconcile_errors_total",
		Help: "Reconcile errors by reason.",
	}, []string{labelReason})

	canaryReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_canary_reads_total",
		Help: "Canaries read by reconcile passes, by source: cache (current) or api (the cache was behind or unknown).",
	}, []string{"source"})

	canaryWakeups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_canary_wakeups_total",
		Help: "Reconcile requests watch events put on the Canary queue, by what woke the Canary (canary, target, primary, service, route, template, alertprovider, config, hook, turn); the queue merges a request for a Canary already waiting.",
	}, []string{"source"})
)

// collectors returns the recorder's collectors, registered by Register.
func collectors() []prometheus.Collector {
	return []prometheus.Collector{
		canaryStatus, canaryWeight, canaryMetricAnalysis, canaryDuration,
		canarySuccesses, canaryFailures, detectionLatency, reconcileErrors, canaryReads, canaryWakeups,
	}
}

// Recorder updates the per-Canary and controller series. The zero value is ready to
// use and safe for concurrent use; all Recorders share the package's collectors.
//
// Wherever a method takes a name, pass the Canary's targetRef.name: Flagger labels its
// series with the target, and dashboards written for Flagger expect it.
type Recorder struct{}

// StatusValue is the flagger_canary_status value of a phase: 0 Progressing, 2 Failed,
// 1 any other phase.
func StatusValue(phase flaggerv1.CanaryPhase) float64 {
	switch phase {
	case flaggerv1.CanaryPhaseProgressing:
		return StatusProgressing
	case flaggerv1.CanaryPhaseFailed:
		return StatusFailed
	default:
		return StatusOther
	}
}

// SetStatus sets flagger_canary_status{name, namespace} from the Canary's phase.
func (Recorder) SetStatus(name, ns string, phase flaggerv1.CanaryPhase) {
	canaryStatus.WithLabelValues(name, ns).Set(StatusValue(phase))
}

// SetWeight sets flagger_canary_weight for <target>-primary and <target>.
func (Recorder) SetWeight(target, ns string, primary, canary int) {
	canaryWeight.WithLabelValues(target+"-primary", ns).Set(float64(primary))
	canaryWeight.WithLabelValues(target, ns).Set(float64(canary))
}

// SetMetric sets flagger_canary_metric_analysis to the last value of an analysis metric.
func (Recorder) SetMetric(name, ns, metric string, v float64) {
	canaryMetricAnalysis.WithLabelValues(name, ns, metric).Set(v)
}

// ObserveDuration records the time spent in one analysis step in
// flagger_canary_duration_seconds.
func (Recorder) ObserveDuration(name, ns string, d time.Duration) {
	canaryDuration.WithLabelValues(name, ns).Observe(nonNegative(d))
}

// IncSuccess counts a promoted run in flagger_canary_successes_total; strategy is the
// Canary's DeploymentStrategy(), status AnalysisCompleted or AnalysisSkipped.
func (Recorder) IncSuccess(name, ns, strategy, status string) {
	canarySuccesses.WithLabelValues(name, ns, strategy, status).Inc()
}

// IncFailure counts a rolled-back run in flagger_canary_failures_total; the labels are
// those of IncSuccess.
func (Recorder) IncFailure(name, ns, strategy, status string) {
	canaryFailures.WithLabelValues(name, ns, strategy, status).Inc()
}

// ObserveDetection records in herald_detection_latency_seconds the time between a
// workload's generation change and the controller noticing it. Negative durations (clock
// skew) count as zero.
func (Recorder) ObserveDetection(ns string, d time.Duration) {
	detectionLatency.WithLabelValues(ns).Observe(nonNegative(d))
}

// IncReconcileError counts a reconcile error in herald_reconcile_errors_total. Keep
// reason to a small fixed set (such as "get", "status-update", "router"): it is a label.
func (Recorder) IncReconcileError(reason string) {
	reconcileErrors.WithLabelValues(reason).Inc()
}

// IncCanaryRead counts a pass's read of its Canary in herald_canary_reads_total; source is
// "cache" or "api".
func (Recorder) IncCanaryRead(source string) {
	canaryReads.WithLabelValues(source).Inc()
}

// IncWakeup counts one request a watch event of source put on the Canary queue, in
// herald_canary_wakeups_total. Keep source to the small fixed set its help names.
func (Recorder) IncWakeup(source string) {
	canaryWakeups.WithLabelValues(source).Inc()
}

// Forget deletes every per-Canary series of a deleted Canary: those labelled with its
// target (flagger_canary_status, _metric_analysis, _duration_seconds, _successes_total
// and _failures_total by name, flagger_canary_weight by <target>-primary and <target>)
// in its namespace. name, the Canary's own name, is not a label of any series and is
// accepted for symmetry with the caller's bookkeeping; herald_detection_latency_seconds
// is per namespace and is kept.
func (Recorder) Forget(name, target, ns string) {
	byTarget := prometheus.Labels{labelName: target, labelNamespace: ns}
	canaryStatus.DeletePartialMatch(byTarget)
	canaryMetricAnalysis.DeletePartialMatch(byTarget)
	canaryDuration.DeletePartialMatch(byTarget)
	canarySuccesses.DeletePartialMatch(byTarget)
	canaryFailures.DeletePartialMatch(byTarget)
	canaryWeight.DeleteLabelValues(target+"-primary", ns)
	canaryWeight.DeleteLabelValues(target, ns)
}

func nonNegative(d time.Duration) float64 {
	return max(d, 0).Seconds()
}

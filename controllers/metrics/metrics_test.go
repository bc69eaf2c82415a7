package metrics

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// The collectors are package-wide, so every test uses its own namespace and reads only
// the series of that namespace.

// series collects c and returns its series in namespace ns (all series when ns is ""),
// keyed by their labels in the form `k=v,k=v` (sorted by name).
func series(t *testing.T, c prometheus.Collector, ns string) map[string]*dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	out := map[string]*dto.Metric{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		var keys []string
		keep := ns == ""
		for _, lp := range pb.GetLabel() {
			keys = append(keys, lp.GetName()+"="+lp.GetValue())
			if lp.GetName() == labelNamespace && lp.GetValue() == ns {
				keep = true
			}
		}
		if keep {
			slices.Sort(keys)
			out[strings.Join(keys, ",")] = &pb
		}
	}
	return out
}

// value reads a gauge or counter. (prometheus/testutil would do, but it needs
// github.com/kylelemons/godebug in go.mod.)
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	if pb.Gauge != nil {
		return pb.GetGauge().GetValue()
	}
	return pb.GetCounter().GetValue()
}

// reset deletes the series of namespace ns, so that tests can run more than once.
func reset(ns string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{canaryStatus, canaryWeight, canaryMetricAnalysis, canaryDuration, canarySuccesses, canaryFailures, detectionLatency} {
		v.DeletePartialMatch(prometheus.Labels{labelNamespace: ns})
	}
}

func seriesKeys(m map[string]*dto.Metric) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestStatusValue(t *testing.T) {
	for phase, want := range map[flaggerv1.CanaryPhase]float64{
		flaggerv1.CanaryPhaseProgressing:      0,
		flaggerv1.CanaryPhaseFailed:           2,
		flaggerv1.CanaryPhaseSucceeded:        1,
		flaggerv1.CanaryPhaseInitializing:     1,
		flaggerv1.CanaryPhaseInitialized:      1,
		flaggerv1.CanaryPhaseWaiting:          1,
		flaggerv1.CanaryPhaseWaitingPromotion: 1,
		flaggerv1.CanaryPhasePromoting:        1,
		flaggerv1.CanaryPhaseFinalising:       1,
		flaggerv1.CanaryPhaseTerminating:      1,
		flaggerv1.CanaryPhaseTerminated:       1,
		"":                                    1,
	} {
		if got := StatusValue(phase); got != want {
			t.Errorf("StatusValue(%q) = %v, want %v", phase, got, want)
		}
	}
}

func TestSetStatus(t *testing.T) {
	reset("status-test")
	var r Recorder
	r.SetStatus("podinfo", "status-test", flaggerv1.CanaryPhaseProgressing)
	if got := value(t, canaryStatus.WithLabelValues("podinfo", "status-test")); got != 0 {
		t.Errorf("Progressing: %v, want 0", got)
	}
	r.SetStatus("podinfo", "status-test", flaggerv1.CanaryPhaseFailed)
	if got := value(t, canaryStatus.WithLabelValues("podinfo", "status-test")); got != 2 {
		t.Errorf("Failed: %v, want 2", got)
	}
	r.SetStatus("podinfo", "status-test", flaggerv1.CanaryPhaseSucceeded)
	if got := value(t, canaryStatus.WithLabelValues("podinfo", "status-test")); got != 1 {
		t.Errorf("Succeeded: %v, want 1", got)
	}
	if got := seriesKeys(series(t, canaryStatus, "status-test")); !slices.Equal(got, []string{"name=podinfo,namespace=status-test"}) {
		t.Errorf("series %v", got)
	}
}

func TestSetWeight(t *testing.T) {
	reset("weight-test")
	var r Recorder
	r.SetWeight("podinfo", "weight-test", 80, 20)
	if got := value(t, canaryWeight.WithLabelValues("podinfo-primary", "weight-test")); got != 80 {
		t.Errorf("primary weight %v, want 80", got)
	}
	if got := value(t, canaryWeight.WithLabelValues("podinfo", "weight-test")); got != 20 {
		t.Errorf("canary weight %v, want 20", got)
	}
	r.SetWeight("podinfo", "weight-test", 100, 0)
	want := []string{"namespace=weight-test,workload=podinfo", "namespace=weight-test,workload=podinfo-primary"}
	s := series(t, canaryWeight, "weight-test")
	if got := seriesKeys(s); !slices.Equal(got, want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	if s[want[0]].GetGauge().GetValue() != 0 || s[want[1]].GetGauge().GetValue() != 100 {
		t.Errorf("weights %v", s)
	}
}

func TestSetMetric(t *testing.T) {
	reset("metric-test")
	var r Recorder
	r.SetMetric("podinfo", "metric-test", "request-success-rate", 99.5)
	r.SetMetric("podinfo", "metric-test", "request-duration", 0.25)
	r.SetMetric("podinfo", "metric-test", "request-duration", 0.3)
	if got := value(t, canaryMetricAnalysis.WithLabelValues("podinfo", "metric-test", "request-success-rate")); got != 99.5 {
		t.Errorf("request-success-rate %v", got)
	}
	if got := value(t, canaryMetricAnalysis.WithLabelValues("podinfo", "metric-test", "request-duration")); got != 0.3 {
		t.Errorf("request-duration %v", got)
	}
	if n := len(series(t, canaryMetricAnalysis, "metric-test")); n != 2 {
		t.Errorf("%d series, want 2", n)
	}
}

func TestObserveDuration(t *testing.T) {
	reset("duration-test")
	var r Recorder
	r.ObserveDuration("podinfo", "duration-test", 40*time.Millisecond)
	r.ObserveDuration("podinfo", "duration-test", 2*time.Second)
	s := series(t, canaryDuration, "duration-test")
	h := s["name=podinfo,namespace=duration-test"].GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 2.04 {
		t.Errorf("count %d sum %v, want 2 and 2.04", h.GetSampleCount(), h.GetSampleSum())
	}
	var bounds []float64
	for _, b := range h.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	if !slices.Equal(bounds, prometheus.DefBuckets) {
		t.Errorf("buckets %v, want the default buckets", bounds)
	}
}

func TestIncSuccessAndFailure(t *testing.T) {
	reset("runs-test")
	var r Recorder
	r.IncSuccess("podinfo", "runs-test", flaggerv1.StrategyCanary, AnalysisCompleted)
	r.IncSuccess("podinfo", "runs-test", flaggerv1.StrategyCanary, AnalysisCompleted)
	r.IncSuccess("podinfo", "runs-test", flaggerv1.StrategyCanary, AnalysisSkipped)
	r.IncFailure("podinfo", "runs-test", flaggerv1.StrategyBlueGreen, AnalysisCompleted)

	counts := func(c prometheus.Collector) map[string]float64 {
		out := map[string]float64{}
		for k, m := range series(t, c, "runs-test") {
			out[k] = m.GetCounter().GetValue()
		}
		return out
	}
	wantSuccesses := map[string]float64{
		"analysis_status=completed,deployment_strategy=canary,name=podinfo,namespace=runs-test": 2,
		"analysis_status=skipped,deployment_strategy=canary,name=podinfo,namespace=runs-test":   1,
	}
	if got := counts(canarySuccesses); !maps.Equal(got, wantSuccesses) {
		t.Errorf("successes %v, want %v", got, wantSuccesses)
	}
	wantFailures := map[string]float64{
		"analysis_status=completed,deployment_strategy=blue-green,name=podinfo,namespace=runs-test": 1,
	}
	if got := counts(canaryFailures); !maps.Equal(got, wantFailures) {
		t.Errorf("failures %v, want %v", got, wantFailures)
	}
}

func TestObserveDetection(t *testing.T) {
	reset("detect-test")
	var r Recorder
	r.ObserveDetection("detect-test", 30*time.Millisecond)
	r.ObserveDetection("detect-test", 2*time.Second)
	r.ObserveDetection("detect-test", -time.Second) // clock skew counts as zero
	h := series(t, detectionLatency, "detect-test")["namespace=detect-test"].GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 2.03 {
		t.Errorf("count %d sum %v, want 3 and 2.03", h.GetSampleCount(), h.GetSampleSum())
	}
	cum := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if cum[0.01] != 1 || cum[0.05] != 2 || cum[2.5] != 3 || cum[30] != 3 {
		t.Errorf("buckets %v", cum)
	}
	if bs := h.GetBucket(); bs[0].GetUpperBound() != 0.01 || bs[len(bs)-1].GetUpperBound() != 30 {
		t.Errorf("buckets span %v..%v, want 0.01..30", bs[0].GetUpperBound(), bs[len(bs)-1].GetUpperBound())
	}
}

func TestIncReconcileError(t *testing.T) {
	var r Recorder
	before := value(t, reconcileErrors.WithLabelValues("test-reason"))
	r.IncReconcileError("test-reason")
	r.IncReconcileError("test-reason")
	if got := value(t, reconcileErrors.WithLabelValues("test-reason")) - before; got != 2 {
		t.Errorf("increase %v, want 2", got)
	}
}

func TestForget(t *testing.T) {
	for _, ns := range []string{"forget-test", "forget-test-2"} {
		reset(ns)
	}
	var r Recorder
	fill := func(target, ns string) {
		r.SetStatus(target, ns, flaggerv1.CanaryPhaseProgressing)
		r.SetWeight(target, ns, 90, 10)
		r.SetMetric(target, ns, "request-success-rate", 100)
		r.SetMetric(target, ns, "request-duration", 0.1)
		r.ObserveDuration(target, ns, time.Second)
		r.IncSuccess(target, ns, flaggerv1.StrategyCanary, AnalysisCompleted)
		r.IncFailure(target, ns, flaggerv1.StrategyCanary, AnalysisCompleted)
	}
	fill("podinfo", "forget-test")
	fill("other", "forget-test")      // another Canary in the namespace
	fill("podinfo", "forget-test-2")  // same target in another namespace
	fill("podinfo-v2", "forget-test") // a target whose name extends this one's
	r.ObserveDetection("forget-test", time.Second)

	r.Forget("podinfo-canary", "podinfo", "forget-test")

	for name, c := range map[string]prometheus.Collector{
		"status": canaryStatus, "metric": canaryMetricAnalysis, "duration": canaryDuration,
		"successes": canarySuccesses, "failures": canaryFailures,
	} {
		for key := range series(t, c, "forget-test") {
			if strings.Contains(key, "name=podinfo,") {
				t.Errorf("%s: series %s left", name, key)
			}
		}
		per := map[string]int{}
		for key := range series(t, c, "forget-test") {
			for _, target := range []string{"other", "podinfo-v2"} {
				if strings.Contains(key, "name="+target+",") {
					per[target]++
				}
			}
		}
		if per["other"] == 0 || per["podinfo-v2"] == 0 {
			t.Errorf("%s: other Canaries' series deleted: %v", name, per)
		}
		if len(series(t, c, "forget-test-2")) == 0 {
			t.Errorf("%s: series of another namespace deleted", name)
		}
	}
	wantWeights := []string{
		"namespace=forget-test,workload=other", "namespace=forget-test,workload=other-primary",
		"namespace=forget-test,workload=podinfo-v2", "namespace=forget-test,workload=podinfo-v2-primary",
	}
	if got := seriesKeys(series(t, canaryWeight, "forget-test")); !slices.Equal(got, wantWeights) {
		t.Errorf("weight series %v, want %v", got, wantWeights)
	}
	if len(series(t, detectionLatency, "forget-test")) != 1 {
		t.Error("per-namespace detection latency deleted")
	}

	// Forgetting twice, or a Canary without series, is harmless.
	r.Forget("podinfo-canary", "podinfo", "forget-test")
	r.Forget("none", "none", "forget-test")
}

var registerOnce sync.Once

func TestRegister(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := flaggerv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "register-test"}},
		&flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "register-test"}},
	).Build()
	registerOnce.Do(func() { Register(reader, "istio") }) // the registry is global

	var r Recorder
	r.SetStatus("podinfo", "register-test", flaggerv1.CanaryPhaseProgressing)
	r.SetWeight("podinfo", "register-test", 100, 0)
	r.SetMetric("podinfo", "register-test", "m", 1)
	r.ObserveDuration("podinfo", "register-test", time.Second)
	r.IncSuccess("podinfo", "register-test", flaggerv1.StrategyCanary, AnalysisCompleted)
	r.IncFailure("podinfo", "register-test", flaggerv1.StrategyCanary, AnalysisCompleted)
	r.ObserveDetection("register-test", time.Second)
	r.IncReconcileError("register-test")
	r.IncCanaryRead("cache")
	r.IncWakeup("target")

	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, name := range []string{
		"flagger_info", "flagger_canary_total", "flagger_canary_status", "flagger_canary_weight",
		"flagger_canary_metric_analysis", "flagger_canary_duration_seconds",
		"flagger_canary_successes_total", "flagger_canary_failures_total",
		"herald_detection_latency_seconds", "herald_reconcile_errors_total", "herald_canary_reads_total",
		"herald_canary_wakeups_total",
	} {
		if !got[name] {
			t.Errorf("%s not registered", name)
		}
	}

	var total []string
	for _, f := range families {
		if f.GetName() != "flagger_canary_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == "register-test" {
					total = append(total, fmt.Sprint(m.GetGauge().GetValue()))
				}
			}
		}
	}
	if !slices.Equal(total, []string{"2"}) {
		t.Errorf("flagger_canary_total{namespace=register-test} = %v, want 2", total)
	}
	if lint, err := promlint.NewWithMetricFamilies(families).Lint(); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range lint {
			if p.Metric == "flagger_canary_total" {
				continue // Flagger's name, kept for compatibility although it is a gauge
			}
			if strings.HasPrefix(p.Metric, "flagger_") || strings.HasPrefix(p.Metric, "herald_") {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
		}
	}
}

package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/router"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/traffic"
)

// BenchmarkGatewayAPICanary measures a weighted Gateway API canary (an HTTPRoute, interval
// 10s, stepWeight 10, maxWeight 50, builtin success-rate and duration metrics read from the
// application's histogram by a real Prometheus scraping the traffic simulator, which plays
// the gateway and accepts the route): apply-to-Succeeded of good versions against the ideal
// of 5 × interval (five weight steps), and apply-to-Failed of bad versions (50% errors)
// against threshold × interval (threshold 2). The same shape as BenchmarkIstioCanary, so the
// two providers compare.
func BenchmarkGatewayAPICanary(b *testing.B) {
	const good, bad = 3, 2
	c, _, env := startHeraldWith(b, cluster.Options{WithPrometheus: true, PrometheusScrapeInterval: time.Second, GatewayAPICRDs: true})
	_ = flaggerv1.AddToScheme(c.Scheme())
	_ = router.AddToScheme(c.Scheme())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim := &traffic.Simulator{Client: c, Namespaces: []string{namespace}, Routing: traffic.RouteGatewayAPI}
	simURL, err := sim.Start(ctx, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if err := env.SetPrometheusTargets(strings.TrimPrefix(simURL, "http://")); err != nil {
		b.Fatal(err)
	}
	d := rolloutTarget("routed")
	if err := c.Create(ctx, d); err != nil {
		b.Fatal(err)
	}
	canary := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "routed", Namespace: namespace},
		Spec: flaggerv1.CanarySpec{
			Provider:      flaggerv1.ProviderGatewayAPIV1,
			MetricsServer: env.PrometheusURL,
			TargetRef:     flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "routed"},
			Service: flaggerv1.CanaryService{Port: 9898, Hosts: []string{"app.example.com"},
				GatewayRefs: []flaggerv1.ParentReference{{Name: "public"}}},
			Analysis: &flaggerv1.CanaryAnalysis{Interval: "10s", Threshold: 2, StepWeight: 10, MaxWeight: 50, Metrics: []flaggerv1.CanaryMetric{
				{Name: "request-success-rate", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}},
				{Name: "request-duration", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(500.0)}},
			}},
		},
	}
	if err := c.Create(ctx, canary); err != nil {
		b.Fatal(err)
	}
	waitFor := phaseWaiter(ctx, c, "routed")
	if err := waitFor(flaggerv1.CanaryPhaseInitialized, 60*time.Second); err != nil {
		b.Fatal(err)
	}
	release := func(i int, errorRate string) time.Time {
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}},"spec":{"containers":[{"name":"app","image":"ghcr.io/stefanprodan/podinfo:6.1.%d"}]}}}}`,
			traffic.ErrorRateAnnotation, errorRate, i)
		start := time.Now()
		if err := c.Patch(ctx, d, client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
			b.Fatal(err)
		}
		if err := waitFor(flaggerv1.CanaryPhaseProgressing, 30*time.Second); err != nil {
			b.Fatal(err)
		}
		return start
	}
	var promoted, failed []time.Duration
	n := 0
	for i := range b.N {
		if i > 0 {
			time.Sleep(35 * time.Second) // the last bad version's errors leave the 30 s metric window
		}
		for range good {
			n++
			start := release(n, "0")
			if err := waitFor(flaggerv1.CanaryPhaseSucceeded, 3*time.Minute); err != nil {
				b.Fatal(err)
			}
			promoted = append(promoted, time.Since(start))
		}
		for range bad {
			n++
			start := release(n, "0.5")
			if err := waitFor(flaggerv1.CanaryPhaseFailed, 3*time.Minute); err != nil {
				b.Fatal(err)
			}
			failed = append(failed, time.Since(start))
		}
	}
	sort.Slice(promoted, func(i, j int) bool { return promoted[i] < promoted[j] })
	sort.Slice(failed, func(i, j int) bool { return failed[i] < failed[j] })
	b.ReportMetric(quantile(promoted, 0.5).Seconds(), "to-succeeded-p50-s")
	b.ReportMetric(promoted[len(promoted)-1].Seconds(), "to-succeeded-max-s")
	b.ReportMetric(50, "ideal-succeeded-s")
	b.ReportMetric(quantile(failed, 0.5).Seconds(), "to-failed-p50-s")
	b.ReportMetric(failed[len(failed)-1].Seconds(), "to-failed-max-s")
	b.ReportMetric(20, "threshold-x-interval-s")
}
